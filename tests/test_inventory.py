"""This host's UUID from xapi's inventory file (what a plugin knows itself by)."""
from xapi_numa.backends.inventory import local_host_uuid, parse_inventory


def test_the_inventory_format_is_key_equals_quoted_value():
    text = "PRIMARY_DISK='/dev/sda'\nINSTALLATION_UUID='AB12CD34-0000-4000-8000-000000000001'\n\nnot a pair\n"
    assert parse_inventory(text) == {"PRIMARY_DISK": "/dev/sda",
                                     "INSTALLATION_UUID": "AB12CD34-0000-4000-8000-000000000001"}


def test_the_host_uuid_comes_from_the_named_file_and_is_none_without_one(tmp_path):
    path = tmp_path / "inventory"
    path.write_text("INSTALLATION_UUID='AB12CD34-0000-4000-8000-000000000001'\n")
    assert local_host_uuid({"XAPI_NUMA_INVENTORY": str(path)}) == "ab12cd34-0000-4000-8000-000000000001"
    assert local_host_uuid({"XAPI_NUMA_INVENTORY": str(tmp_path / "missing")}) is None
    path.write_text("BUILD_NUMBER='1'\n")
    assert local_host_uuid({"XAPI_NUMA_INVENTORY": str(path)}) is None
