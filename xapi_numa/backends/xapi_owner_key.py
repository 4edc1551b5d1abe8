"""The owner key: one caller at a time holds a VM, through its ``other_config``.

``add_to_other_config`` is xapi's one conditional write: it runs under xapi's
database lock and refuses a key that exists (``MAP_DUPLICATE_KEY``), so of
several callers adding one key exactly one succeeds.  xapi has no conditional
*remove*, so a key left by a caller that died cannot be taken over by removing
it and adding one's own: two callers that both read the dead caller's token
could each remove "the key", the second removing the token the first had just
written, and both would own the VM.

So the key has generations: ``KEY`` (generation 0), then ``KEY.1``, ``KEY.2``...
The owner is whoever holds the highest generation present, provided every
generation below it is held by a stale token.  A caller claims generation 0
when no generation is there, or, when the highest one's holder is stale, the
next generation up; only one of several callers adding the same generation
succeeds.  Read back after its add, a caller owns the VM only if its key is on
top and nothing live is below it: a caller whose read was old (it planned a
takeover, and meanwhile the owner let go and another caller claimed generation
0) finds that caller live below, removes its own key and refuses.  A key is
only ever removed by its holder, or as a stale generation below the owner's,
so a caller told it owns the VM does until it lets go.  The winner of a
takeover removes the generations below its own.  Generations are read up to
MAX_GENERATION; a stale holder there (only a hand edit gets there) is removed
and the claim made afresh, as before generations (the one place the
remove-and-add race is left).  A caller of an older xapi-numa in the same pool knows
generation 0 only: after a takeover (a caller died) it can hold the VM beside
this one's, until the pool runs one version.

Which token is stale is the caller's to say (``stale``): a place's, release's,
settle's or policy change's is once its time is up, or at once, on the host its
holder ran on, when that process is gone (:mod:`xapi_numa.core.owner_token`).
"""
from typing import Callable, Dict, List, Optional, Tuple

from xapi_numa.backends import xapi
from xapi_numa.core.numbers import is_decimal
from xapi_numa.errors import InvalidArgument

MAX_GENERATION_DIGITS = 18  # a suffix longer than this is not one of ours (nor is it reached: one per takeover)
MAX_GENERATION = 10 ** MAX_GENERATION_DIGITS - 1


def generations(other_config: Dict[str, str], key: str) -> List[Tuple[int, str]]:
    """The generations of ``key`` present, as (generation, key name), lowest first."""
    found = []
    for name in other_config:
        if name == key:
            found.append((0, name))
        elif name.startswith(key + "."):
            suffix = name[len(key) + 1:]
            if is_decimal(suffix) and len(suffix) <= MAX_GENERATION_DIGITS and int(suffix) > 0:
                found.append((int(suffix), name))
    return sorted(found)


def _name(key: str, generation: int) -> str:
    return key if generation == 0 else "{}.{}".format(key, generation)


def owner_of(other_config: Dict[str, str], key: str) -> Optional[str]:
    """The token of whoever holds the VM (the highest generation present), or None."""
    present = generations(other_config, key)
    return other_config[present[-1][1]] if present else None


def claim_other_config_key(session, vm: str, key: str, token: str,
                           stale: Optional[Callable[[str], bool]] = None) -> bool:
    """Own ``key`` on the VM with ``token`` unless someone else holds it; True for the
    owner (a retry of our own claim included), False for everyone else.
    ``stale(holder)`` says a holder's token was left by a caller that died: the next
    generation is then claimed over it.  ``token`` must be unique to the caller (a
    fresh UUID): xapi may accept re-adding an identical pair."""
    if not token:
        raise InvalidArgument("token", "an owner token must not be empty")
    def dead(holder: str) -> bool:
        return stale is not None and stale(holder)

    for _ in range(2):  # a second look: the generation we tried was taken by a caller since gone
        config = xapi.call(session.xenapi.VM.get_other_config, vm)
        present = generations(config, key)
        if present:
            top, name = present[-1]
            holder = config[name]
            if holder == token:
                return True
            if not dead(holder):
                return False
            if top >= MAX_GENERATION:  # a hand edit's: no generation above it is read
                xapi.call(session.xenapi.VM.remove_from_other_config, vm, name)
                continue
            target = top + 1
        else:
            target = 0
        try:
            xapi.call(session.xenapi.VM.add_to_other_config, vm, _name(key, target), token)
        except xapi.XapiError as err:
            if err.code != xapi.MAP_DUPLICATE_KEY:
                raise
        config = xapi.call(session.xenapi.VM.get_other_config, vm)
        present = generations(config, key)
        below = [name for _, name in present[:-1]]
        if present and config[present[-1][1]] == token and all(dead(config[name]) for name in below):
            for name in below:  # superseded: their holders are dead
                xapi.call(session.xenapi.VM.remove_from_other_config, vm, name)
            return True
        # not ours: a generation added under a newer owner's, or over a live one our read was too
        # old to see (it claimed the VM after its owner let go): ours decides nothing, and goes
        _drop_own(session, vm, config, present, token)
    return False


def _drop_own(session, vm: str, config: Dict[str, str], present: List[Tuple[int, str]], token: str) -> None:
    """Remove the keys that hold ``token`` but do not own the VM (they decide nothing)."""
    for _, name in present:
        if config.get(name) == token:
            xapi.call(session.xenapi.VM.remove_from_other_config, vm, name)


def holds_other_config_key(session, vm: str, key: str, token: str,
                           stale: Optional[Callable[[str], bool]] = None) -> bool:
    """Does ``token`` still own the VM?  A caller slow past its lease may have been taken
    over meanwhile: its key is then removed, or about to be, as a dead caller's.

    Its key on top: it does.  Its key gone: it does not.  Its key there with one above
    it: either a takeover (whose winner judged ``token`` stale, and removes it next) or
    a caller whose read was too old, which finds ``token`` live below it and drops its
    own key (:func:`claim_other_config_key`).  ``stale`` tells the two apart: while
    ``token`` is not stale no takeover can have happened.  Without it, a key above
    counts as a takeover."""
    config = xapi.call(session.xenapi.VM.get_other_config, vm)
    present = generations(config, key)
    if not any(config[name] == token for _, name in present):
        return False
    if config[present[-1][1]] == token:
        return True
    return stale is not None and not stale(token)


def release_other_config_key(session, vm: str, key: str, token: str) -> bool:
    """Let go: remove every generation of ``key`` that holds ``token``; True if one did.
    Only the holder removes its key while it owns the VM (an admin editing it by
    hand in between is the one race left)."""
    config = xapi.call(session.xenapi.VM.get_other_config, vm)
    mine = [name for _, name in generations(config, key) if config[name] == token]
    for name in mine:
        xapi.call(session.xenapi.VM.remove_from_other_config, vm, name)
    return bool(mine)
