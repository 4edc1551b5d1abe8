"""Review 3: holes in the owner key's generations (backends/xapi_owner_key.py)."""
import XenAPI

from xapi_numa.backends import xapi_owner_key

KEY = "numa_place_owner"
STALE = "dead-caller"


class _VM:
    """One VM's other_config; each call atomic, as xapi's are.  ``before_add`` runs once,
    just before a named caller's first add_to_other_config (a caller delayed there)."""

    def __init__(self, start, before_add=None):
        self.map = dict(start)
        self.before_add = before_add or {}

    def calls(self, name):
        vm = self

        class Calls:
            def get_other_config(self, ref):
                return dict(vm.map)

            def add_to_other_config(self, ref, key, value):
                hook = vm.before_add.pop(name, None)
                if hook is not None:
                    hook()
                if key in vm.map:
                    raise XenAPI.Failure(["MAP_DUPLICATE_KEY", "VM", "other_config", ref, key])
                vm.map[key] = value

            def remove_from_other_config(self, ref, key):
                vm.map.pop(key, None)

        return type("S", (), {"xenapi": type("X", (), {"VM": Calls()})()})()


def _claim(vm, name):
    return xapi_owner_key.claim_other_config_key(vm.calls(name), "vm", KEY, "token-" + name,
                                                 stale=lambda t: t == STALE)


def test_a_takeover_read_before_the_generations_reset_steals_a_live_owners_vm():
    """B reads {KEY: dead} and is delayed before it adds KEY.1.  Meanwhile A takes over
    (KEY.1), works and lets go (no key left), and C claims the free VM at generation 0.
    B's KEY.1 then goes in (nothing is there to refuse it), B reads itself on top, owns,
    and removes C's key: B and C both own the VM."""
    holder = {}

    def meanwhile():
        assert _claim(vm, "a")
        assert xapi_owner_key.release_other_config_key(vm.calls("a"), "vm", KEY, "token-a")
        holder["c"] = _claim(vm, "c")
        assert holder["c"] and vm.map == {KEY: "token-c"}  # C owns the free VM

    vm = _VM({KEY: STALE}, before_add={"b": meanwhile})
    b = _claim(vm, "b")
    assert not (b and holder["c"]), ("both own the VM", vm.map)


def test_a_nine_digit_generation_is_taken_over():
    """A stale holder at the highest generation this code reads (9 digits: a hand edit, a
    clone's copy) must be passed over like any dead caller's key.  The takeover adds a
    10-digit generation that generations() ignores: nobody ever owns the VM again (every
    place, release and set_policy is refused with VM_BUSY for good), and each try leaves
    a key behind."""
    vm = _VM({KEY + ".999999999": STALE})
    owned = _claim(vm, "a")
    leftover = [k for k, v in vm.map.items() if v == "token-a"]
    assert owned, ("never taken over", vm.map)
    assert xapi_owner_key.release_other_config_key(vm.calls("a"), "vm", KEY, "token-a")
    assert not [k for k, v in vm.map.items() if v == "token-a"], leftover
