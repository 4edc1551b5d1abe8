"""The plugin's reply must parse as XML 1.0 whatever a message holds.

xapi parses a plugin's stdout with Xmlm, which refuses a control character, raw or
as a character reference, and a lone surrogate: one in an error message (a name or
a value quoted into it) turned the whole reply into XENAPI_PLUGIN_FAILURE "failed
to parse plugin output", losing the error.  Python's expat refuses the same."""
import io
import sys
import xmlrpc.client

import pytest

from xapi_numa.errors import InvalidArgument
from xapi_numa.plugin import boundary


@pytest.mark.parametrize("text", ["a\x01b", "bell\x07", "lone \udc80 surrogate", "\ufffe"])
def test_a_message_with_characters_xml_forbids_still_parses(text, monkeypatch):
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="ascii"))
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(1, text), methodresponse=True)
    boundary.write_response(fault)
    sys.stdout.flush()
    with pytest.raises(xmlrpc.client.Fault) as caught:
        xmlrpc.client.loads(out.getvalue())
    assert "\ufffd" in caught.value.faultString


def test_a_failure_carrying_a_control_character_reaches_xapi_readable(monkeypatch):
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="ascii"))
    err = InvalidArgument("vm", "named \x01\x02", "a VM's UUID or name")
    from xapi_numa import errors
    from xapi_numa.plugin import protocol as proto
    boundary.write_response(proto.failure_response(errors.failure_details(err)))
    sys.stdout.flush()
    text = out.getvalue()
    assert b"&#1;" not in text and b"\x01" not in text
    result = proto.parse_response(text.decode("ascii"))
    assert result["Status"] == "Failure" and result["ErrorDescription"][0] == err.code
    # tab, newline and carriage return are XML characters: kept as they are
    assert boundary.NOT_XML_CHARS.sub("?", "a\tb\nc\rd") == "a\tb\nc\rd"
