"""xapi's side of the host-plugin convention, for the loopback server (tests only).

What xapi (xapi_plugins.ml, over its own XML-RPC reader, http-lib's XMLRPC and
xml-light2) writes in a plugin's argv[1] and how it reads the plugin's stdout,
written again in Python from those semantics:

* the call: ``<methodCall>`` with no XML declaration; every string a bare
  ``<value>text</value>`` (an empty one ``<value/>``); characters below 0x20 but
  tab, newline and carriage return silently dropped.
* the answer: one XML document.  Text of only spaces, tabs and newlines between
  elements is dropped (so a string of only those reads as "").  The elements must be
  exactly a methodResponse's, with no attributes: ``params/param/value/struct``
  whose ``Status`` is ``Success`` with a string ``Value``, or ``Failure`` with a
  non-empty ``ErrorDescription`` array of strings (raised as that failure); or a
  ``fault`` (``XENAPI_PLUGIN_FAILURE ["fault", code, reason]``).  Output that is not
  XML is ``XENAPI_PLUGIN_FAILURE ["failed to parse plugin output", output, the
  parser's error]``; XML of any other shape fails the call as an INTERNAL_ERROR
  (xapi's reader raises a type error that nothing catches).
"""

import xml.etree.ElementTree as ElementTree
from typing import Dict, List, Tuple, Union

PLUGIN_FAILURE = "XENAPI_PLUGIN_FAILURE"
_BLANK = set(" \t\n")
# characters xapi's XML writer drops: the C0 controls but tab, newline, carriage return
_DROPPED = {chr(c) for c in range(0x20)} - {"\t", "\n", "\r"}

Node = Union[str, Tuple[str, Dict[str, str], list]]


class PluginAnswer(Exception):
    """xapi's answer to a plugin's output that is not a success: ``details`` is the
    XenAPI failure (code first)."""

    def __init__(self, details: List[str]) -> None:
        super().__init__(details)
        self.details = details


class _TypeError(Exception):
    """xapi's XML-RPC reader met XML of another shape than it expects."""


def _escape(text: str) -> str:
    text = "".join(c for c in text if c not in _DROPPED)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _string(text: str) -> str:
    return "<value>{}</value>".format(_escape(text)) if text else "<value/>"


def method_call(function: str, session: str, args: Dict[str, str]) -> str:
    """The methodCall document xapi passes a plugin as argv[1]."""
    members = "".join("<member><name>{}</name>{}</member>".format(_escape(k), _string(v)) for k, v in args.items())
    return ("<methodCall><methodName>{}</methodName><params><param>{}</param>"
            "<param><value><struct>{}</struct></value></param></params></methodCall>").format(
                _escape(function), _string(session), members)


def _tree(element) -> Node:
    """An element as xapi's XML reader gives it: (tag, attributes, children), text
    children kept unless made only of spaces, tabs and newlines."""
    children: list = []
    if element.text and not set(element.text) <= _BLANK:
        children.append(element.text)
    for child in element:
        children.append(_tree(child))
        if child.tail and not set(child.tail) <= _BLANK:
            children.append(child.tail)
    return (element.tag, dict(element.attrib), children)


def _unbox(node: Node, tag: str) -> list:
    if isinstance(node, tuple) and node[0] == tag and not node[1]:
        return node[2]
    raise _TypeError("unbox: expected <{}>".format(tag))


def _single(node: Node, tag: str) -> Node:
    children = _unbox(node, tag)
    if len(children) != 1:
        raise _TypeError("singleton: <{}> should hold one element, holds {}".format(tag, len(children)))
    return children[0]


def _text(node: Node) -> str:
    if not isinstance(node, str):
        raise _TypeError("pcdata: expected text, found <{}>".format(node[0]))
    return node


def _str(node: Node) -> str:
    """A string value: ``<value>text</value>``, ``<value><string>text</string></value>``
    or either empty."""
    children = _unbox(node, "value")
    if not children or children == [("string", {}, [])]:
        return ""
    if len(children) == 1 and isinstance(children[0], str):
        return children[0]
    return _text(_single(_single(node, "value"), "string"))


def _struct(node: Node) -> List[Tuple[str, Node]]:
    members = []
    for member in _unbox(_single(node, "value"), "struct"):
        pair = _unbox(member, "member")
        if len(pair) != 2:
            raise _TypeError("pair: a <member> should hold a name and a value")
        name = _unbox(pair[0], "name")
        if len(name) > 1 or (name and not isinstance(name[0], str)):
            raise _TypeError("From.name: should contain PCData")
        members.append((name[0] if name else "", pair[1]))
    return members


def _lookup(members: List[Tuple[str, Node]], name: str) -> Node:
    for key, value in members:
        if key == name:
            return value
    raise _TypeError("Status: no member " + name)


def _int32(node: Node) -> str:
    child = _single(node, "value")
    if not (isinstance(child, tuple) and child[0] in ("i4", "int") and not child[1] and len(child[2]) == 1):
        raise _TypeError("singleton: expected <i4> or <int>")
    text = _text(child[2][0])
    try:
        value = int(text, 0) if text.lower().startswith(("0x", "-0x", "+0x")) else int(text)
    except ValueError:
        raise _TypeError("int_of_string " + text) from None
    if not -(1 << 31) <= value < (1 << 31):
        raise _TypeError("int_of_string " + text)
    return str(value)


def read_output(raw: bytes, output: str) -> str:
    """The plugin's result string from its stdout (``raw``, and as text ``output``),
    or PluginAnswer with xapi's failure."""
    try:
        root = _tree(ElementTree.fromstring(raw))
    except ElementTree.ParseError as err:
        raise PluginAnswer([PLUGIN_FAILURE, "failed to parse plugin output", output, str(err)]) from None
    try:
        body = _single(root, "methodResponse")
        if isinstance(body, tuple) and body[0] == "fault":
            members = _struct(_single(body, "fault"))
            raise PluginAnswer([PLUGIN_FAILURE, "fault", _int32(_lookup(members, "faultCode")),
                                _str(_lookup(members, "faultString"))])
        if not (isinstance(body, tuple) and body[0] == "params"):
            raise _TypeError("response: expected <params> or <fault>")
        params = [_single(param, "param") for param in _unbox(body, "params")]
        if len(params) != 1:
            raise _TypeError("Expected single return value (struct status)")
        members = _struct(params[0])
        status = _str(_lookup(members, "Status"))
        if status == "Success":
            return _str(_lookup(members, "Value"))
        if status != "Failure":
            raise _TypeError("Status: " + status)
        array = _single(_lookup(members, "ErrorDescription"), "value")
        details = [_str(v) for v in _unbox(_single(array, "array"), "data")]
        if not details:
            raise _TypeError("Empty array of error strings")
        raise PluginAnswer(details)
    except _TypeError as err:
        raise PluginAnswer(["INTERNAL_ERROR", "XMLRPC.RunTimeTypeError({})".format(err)]) from None
