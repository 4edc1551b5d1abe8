"""What README.md and docs/*.md tell an admin to type, checked against the software.

The reference was split out of one long README with its text unchanged, so nothing
else keeps the commands it quotes in step with the parsers.  Checked here:

- every ``xapi-numa [--global ...] COMMAND [SUBCOMMAND] --flag`` (and ``xapi-numad``,
  ``xapi-numa-rrdd``) written at the start of a shell statement in a code block or in
  `inline code` names a command and flags its own argparse parser accepts;
  and names each command by its own name, not an alias (``migrate`` for ``move-memory``);
- every ``xe host-call-plugin ... plugin=numa fn=NAME args:KEY=...`` names a function of
  the plugin and keys that function's check_args takes (asked of the function itself);
- every ``NUMA_CODE`` written exists in errors.py, and every code there is written;
- every relative link ``[text](path)`` names a file that exists.

Only clear command lines are read: a flag mentioned in passing in prose (```--json```)
is not a command and is not checked.  The tests at the end plant each kind of mistake
in a made-up page and show it is found.
"""
import argparse
import os
import re
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

from xapi_numa import daemon, errors, rrdd_plugin
from xapi_numa.cli.main import build_parser
from xapi_numa.plugin.functions import FUNCTIONS

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DOCS = ["README.md"] + sorted(os.path.join("docs", n) for n in os.listdir(os.path.join(ROOT, "docs"))
                              if n.endswith(".md"))
PARSERS = {"xapi-numa": build_parser, "xapi-numad": daemon.build_parser, "xapi-numa-rrdd": rrdd_plugin.build_parser}
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")  # a span may wrap onto the next line of its paragraph
FLAG = re.compile(r"^--?[A-Za-z][A-Za-z0-9-]*")
WORD = re.compile(r"[^\s\[\](){}]+")  # brackets of a synopsis ([--json], (a|b)) are not part of a word
CODE = re.compile(r"(?<![A-Za-z0-9_])NUMA_[A-Z0-9_]+")
LINK = re.compile(r"\[[^\[\]]*\]\(([^)\s]+)\)")
PROBE = "zz_not_an_argument"
Snippet = Tuple[int, str]  # (line number, text)


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def split_doc(text: str) -> Tuple[List[Snippet], str]:
    """The code blocks' lines (a line ending in a backslash joined with the next), and the
    prose with those lines blanked (so offsets still give line numbers)."""
    code, prose, inside, pending = [], [], False, None
    for number, line in enumerate(text.split("\n"), 1):
        if FENCE.match(line):
            inside = not inside
            prose.append("")
            continue
        prose.append("" if inside else line)
        if not inside:
            continue
        start, joined = pending if pending else (number, "")
        joined += line
        pending = (start, joined[:-1] + " ") if line.rstrip().endswith("\\") else None
        if pending is None:
            code.append((start, joined))
    return code, "\n".join(prose)


def inline_spans(text: str, first_line: int = 1) -> Iterator[Snippet]:
    for match in INLINE.finditer(text):
        yield first_line + text.count("\n", 0, match.start()), match.group(1).replace("\n", " ")


def snippets(text: str) -> Iterator[Snippet]:
    """Each code line (its comment cut off) and each `inline span`, code lines' own included
    (a comment in a code block quotes commands too)."""
    code, prose = split_doc(text)
    for number, line in code:
        yield number, re.split(r"(?:^|\s)#", line, 1)[0]
        yield from inline_spans(line, number)
    yield from inline_spans(prose)


def statements(snippet: str) -> Iterator[List[str]]:
    """The words of each shell statement, prompt, sudo and VAR=value before it left out."""
    for part in re.split(r";|&&|\|\|", snippet):
        words = part.strip().split()
        while words and (words[0] in ("$", "sudo", "env") or re.match(r"^[A-Za-z_]\w*=", words[0])):
            words = words[1:]
        if words:
            yield words


def top_level_alternatives(text: str) -> List[str]:
    """``a | b [c | d]`` as ``a``, ``b [c | d]``: a synopsis' alternatives, or a pipe."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[({"
        depth -= ch in "])}"
        if ch == "|" and depth == 0 and text[i - 1:i] == " " and text[i + 1:i + 2] == " ":
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


# -- command lines ---------------------------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def takes_value(parser: argparse.ArgumentParser, flag: str) -> bool:
    action = parser._option_string_actions.get(flag)
    return action is not None and action.nargs != 0


def flag_of(word: str) -> Optional[str]:
    match = FLAG.match(word)
    return match.group(0) if match else None


def canonical(parser: argparse.ArgumentParser) -> str:
    """A command's own name: argparse names a parser's prog after it, not after an alias."""
    return parser.prog.split()[-1]


def walk(program: str, parser: argparse.ArgumentParser, words: List[str]) -> Tuple[List[str], argparse.ArgumentParser]:
    """What is wrong in ``words`` (after the program), and the parser its last words go to:
    a flag before the command is the program's own, one after it its command's (as argparse)."""
    wrong, name = [], program
    for i, word in enumerate(words):
        if word in ("...", "\u2026") and subcommands(parser):
            break  # `xapi-numa --pool URL ...`: the command left out (`vnuma VM ... --xl`: its flags are read)
        flag = flag_of(word)
        if flag:
            if flag not in parser._option_string_actions:
                wrong.append("{} has no flag {}".format(name, flag))
            continue
        choices = subcommands(parser)
        if not choices or (i and takes_value(parser, flag_of(words[i - 1]) or "")):
            continue  # a value or a positional argument
        names = word.split("|")  # sim pause|unpause|destroy
        unknown = [n for n in names if n not in choices]
        if unknown:
            return wrong + ["{} has no command {} (it has: {})".format(name, unknown[0], ", ".join(sorted(choices)))], \
                parser
        wrong += ["{} {} is an alias: write {}".format(name, n, canonical(choices[n])) for n in names
                  if canonical(choices[n]) != n]
        rest = [problem for n in names[1:] for problem in walk(name + " " + n, choices[n], words[i + 1:])[0]]
        inner, last = walk(name + " " + names[0], choices[names[0]], words[i + 1:])
        return wrong + inner + rest, last
    return wrong, parser


def command_problems(snippet: str) -> List[str]:
    wrong = []
    for words in statements(snippet):
        if words[0] not in PARSERS:
            continue
        top = PARSERS[words[0]]()
        parts = top_level_alternatives(" ".join(words[1:]))
        problems, last = walk(words[0], top, WORD.findall(parts[0]))
        for part in parts[1:]:  # `topology | vcpus [DOMAIN]`: another command; `--xl | --apply`: another flag
            more = WORD.findall(part)
            if more and flag_of(more[0]):
                problems += walk(words[0], last, more)[0]
            elif more and more[0] in subcommands(top):
                problems += walk(words[0], top, more)[0]
            else:
                break  # a pipe into another program
        wrong += ["`{}`: {}".format(" ".join(words), p) for p in problems]
    return wrong


# -- plugin calls ----------------------------------------------------------------------------------------------


class Reached(Exception):
    """The function took its arguments and went on to use the host."""


class NoHost:
    def __getattr__(self, name: str):
        raise Reached(name)


def refusal(fn: str, args: Dict[str, str]) -> Optional[errors.InvalidArgument]:
    try:
        FUNCTIONS[fn](NoHost(), args)
    except errors.InvalidArgument as err:
        return err
    except Reached:
        return None
    return None


def allowed_keys(fn: str, given: Set[str]) -> Optional[Set[str]]:
    """The keys the function takes along with ``given`` (place takes other keys with vm than
    with vcpus and memory): from its own refusal of an unknown one, or None if it asked first
    for a key that is missing."""
    args = {PROBE: "x"}
    args.update((k, "x") for k in sorted(given))
    err = refusal(fn, args)
    if err is None or err.detail != "unknown argument":
        return None
    return set((err.allowed or "").split(", ")) - {"no arguments"}


def keys_any_function_takes() -> Set[str]:
    keys = set()  # type: Set[str]
    for fn in FUNCTIONS:
        for given in (set(), {"vm"}, {"vcpus", "memory"}):
            keys |= allowed_keys(fn, given) or set()
    return keys


def plugin_call_problems(words: List[str]) -> List[str]:
    if "plugin=numa" not in words:
        return []
    words = WORD.findall(" ".join(words))  # [args:max=2G]: an optional argument is an argument too
    fns = [w[3:] for w in words if w.startswith("fn=")]
    keys = [w[5:].split("=", 1)[0] for w in words if w.startswith("args:")]
    if not fns:
        return ["no fn= in a call of the numa plugin"]
    if fns[0] not in FUNCTIONS:
        return ["the numa plugin has no function {} (it has: {})".format(fns[0], ", ".join(sorted(FUNCTIONS)))]
    allowed = allowed_keys(fns[0], set(keys))
    if allowed is None:  # place without vm, vcpus or memory
        return ["fn={} with args {} is refused: {}".format(fns[0], keys, refusal(fns[0], {k: "x" for k in keys}))]
    wrong = ["fn={} takes no argument {} (it takes: {})".format(fns[0], k, ", ".join(sorted(allowed)))
             for k in keys if k not in allowed]
    err = refusal(fns[0], {k: "x" for k in keys})
    if not wrong and "..." not in words and err is not None and err.detail == "missing argument":
        wrong.append("fn={} needs args:{}= too".format(fns[0], err.field))
    return wrong


def plugin_problems(snippet: str) -> List[str]:
    alone = snippet.strip()
    if re.match(r"^fn=\w+$", alone) and alone[3:] not in FUNCTIONS:  # `fn=release` in a sentence
        return ["`{}`: the numa plugin has no function {}".format(alone, alone[3:])]
    key = re.match(r"^args:(\w+)=", alone)
    if key and key.group(1) not in keys_any_function_takes():
        return ["`{}`: no function of the numa plugin takes {}".format(alone, key.group(1))]
    wrong = []
    for words in statements(snippet):
        if words[:2] == ["xe", "host-call-plugin"]:
            wrong += ["`{}`: {}".format(" ".join(words), p) for p in plugin_call_problems(words)]
    return wrong


# -- error codes and links -------------------------------------------------------------------------------------


def software_codes() -> Set[str]:
    return {c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.NumaError)}


def doc_codes(text: str) -> Set[str]:
    return set(CODE.findall(text))


def link_problems(rel: str, text: str) -> List[str]:
    _, prose = split_doc(text)
    prose = INLINE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)  # a link quoted as code is no link
    wrong = []
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or a place in this page
        path = os.path.normpath(os.path.join(ROOT, os.path.dirname(rel), target.split("#", 1)[0]))
        if not os.path.exists(path):
            wrong.append("line {}: [..]({}) names no file".format(prose.count("\n", 0, match.start()) + 1, target))
    return wrong


def page_problems(rel: str, text: str) -> List[str]:
    wrong = ["{}:{}: {}".format(rel, n, p) for n, s in snippets(text) for p in command_problems(s) + plugin_problems(s)]
    wrong += ["{}: {} is no code in errors.py".format(rel, c) for c in sorted(doc_codes(text) - software_codes())]
    return wrong + ["{}: {}".format(rel, p) for p in link_problems(rel, text)]


# -- the documentation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", DOCS)
def test_what_the_page_says_to_type_the_software_takes(rel):
    assert page_problems(rel, read(rel)) == []


def test_every_error_code_is_documented():
    written = set()  # type: Set[str]
    for rel in DOCS:
        written |= doc_codes(read(rel))
    assert sorted(software_codes() - written) == []


def test_the_pages_quote_commands_at_all():
    """The extraction finds what it should: were it to find nothing, every page would pass."""
    found = [s for rel in DOCS for _, s in snippets(read(rel))]
    assert sum(1 for s in found for w in statements(s) if w[0] in PARSERS) > 40
    assert sum(1 for s in found for w in statements(s) if w[:2] == ["xe", "host-call-plugin"]) > 10


# -- the checks catch what they are for ------------------------------------------------------------------------

PAGE = """# A page

Run `xapi-numa topology --json`; prose may say --frobnicate in passing, or `--frobnicate`.

```sh
xapi-numa --pool $URL vm-start $VM [--host NAME] \\
    --deadline 60   # a comment may say --frobnicate
xapi-numa sim pause|unpause /tmp/h.json A;  xapi-numa top [--once] | memory [--json]
xe host-call-plugin host-uuid=$HOST plugin=numa fn=place args:vm=$VM args:dry_run=true
```

See [the CLI](docs/cli.md) and [Xen](https://xenproject.org); fails with `NUMA_NO_CAPACITY`.
"""


def test_a_right_page_passes_and_a_flag_in_passing_is_no_command():
    assert page_problems("README.md", PAGE) == []


@pytest.mark.parametrize("old, new, said", [
    ("--deadline 60", "--dead-line 60", "vm-start has no flag --dead-line"),
    ("topology --json", "topology --once", "topology has no flag --once"),
    ("| memory [--json]", "| memory [--once]", "memory has no flag --once"),
    ("pause|unpause", "pause|resume", "sim has no command resume"),
    ("--pool $URL", "--pool $URL --insecure-tls", "xapi-numa has no flag --insecure-tls"),
    ("`xapi-numa topology --json`", "`xapi-numad --topology`", "xapi-numad has no flag --topology"),
    ("fn=place", "fn=place_vm", "no function place_vm"),
    ("args:dry_run", "args:dryrun", "takes no argument dryrun"),
    ("args:vm=$VM args", "args", "vm: missing argument"),
    ("fn=place args:vm=$VM args:dry_run=true", "fn=memory_move_status", "needs args:vm= too"),
    ("args:dry_run=true", "[args:dryrun=true]", "takes no argument dryrun"),
    ("`NUMA_NO_CAPACITY`", "`NUMA_NO_ROOM`", "NUMA_NO_ROOM is no code"),
    ("(docs/cli.md)", "(docs/command-line.md)", "docs/command-line.md) names no file"),
])
def test_a_planted_mistake_is_found(old, new, said):
    assert old in PAGE
    problems = page_problems("README.md", PAGE.replace(old, new, 1))
    assert len(problems) == 1 and said in problems[0], problems


def test_a_lone_plugin_function_or_key_in_a_sentence_is_checked():
    assert plugin_problems("fn=release") == [] and plugin_problems("args:force=true") == []
    assert "no function relase" in plugin_problems("fn=relase")[0]
    assert "no function of the numa plugin takes forse" in plugin_problems("args:forse=true")[0]


def test_a_command_written_by_its_alias_is_found():
    """The docs name each command once, by its own name (docs/memory-moves.md says the aliases exist)."""
    assert command_problems("xapi-numa move-memory vm --to node:1") == []
    assert command_problems("xapi-numa memory-moves --json") == []
    problems = command_problems("xapi-numa migrate vm --to node:1")
    assert len(problems) == 1 and "migrate is an alias: write move-memory" in problems[0], problems
    assert "migrations is an alias: write memory-moves" in command_problems("xapi-numa migrations")[0]
