"""A loopback XenAPI server: a pool of simulated hosts behind xapi's wire format.

XAPI cannot run here, so tests (and ``make demo``) talk to this instead, with
the real ``XenAPI`` client.  It speaks XenAPI's XML-RPC: sessions, result
structs ``{"Status": ..., "Value"/"ErrorDescription": ...}``, opaque refs,
string-encoded integers.  It offers the pool/host/VM/VM_metrics calls
xapi-numa uses, with the names, parameters, record fields and error names of
xapi's datamodel (checked against ``shared/xenapi.json`` by a test).  A call's
parameters are read as xapi's generated dispatcher reads them: their number
(``MESSAGE_PARAMETER_COUNT_MISMATCH`` [method, taken, given], the session not
counted), each as its datamodel type (each method's annotations; another type is
an ``INTERNAL_ERROR``), then the session (``SESSION_INVALID``); an unknown method
with a parameter has it checked as a session before ``MESSAGE_METHOD_UNKNOWN``.

``VM.start_on`` builds the domain on that host's simulated hypervisor in xenopsd's
order (a shell with xapi's build overhead round every node with CPUs, the vCPUs'
affinity, the RAM, the video RAM) and honours ``VCPUs_params["mask"]`` as xapi and xenopsd do (one list for every
vCPU or one per vCPU, narrowed to the host's guest mask, ignored whole if any
piece is not a number; each vCPU's hard affinity, so memory follows them).
``host.call_plugin`` runs the plugin as xapi does: a subprocess given xapi's
methodCall in argv[1] and an empty stdin, its stdout read as xapi reads it
(:mod:`xapi_plugin_wire`), its stderr ignored unless it failed.
"""

import copy
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib
import xmlrpc.client
from collections import Counter
from socketserver import ThreadingMixIn
from typing import Dict, FrozenSet, List, Optional, Set, Tuple
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import xapi_plugin_wire as wire
from xapi_numa.errors import NoCapacity, NumaError
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.core.overhead import xapi_model
from xapi_numa.core.xenopsd_build import build_type, resolved_domain_type, video_ram

NULL = "OpaqueRef:NULL"
# what VM.revert puts back from the snapshot (xapi copies every field but its do_not_copy list: the
# VM's identity, power state, where it runs and its devices)
REVERTED = ("name_label", "name_description", "VCPUs_max", "VCPUs_at_startup", "VCPUs_params", "memory_static_max",
            "memory_dynamic_max", "memory_dynamic_min", "memory_static_min", "memory_target",
            "HVM_shadow_multiplier", "HVM_boot_policy", "domain_type", "platform", "other_config")
PLUGIN_TIMEOUT = 120
# xapi's generic errors (Api_errors), raised by any call: not listed per message in the datamodel.
GENERIC_ERRORS = {"HANDLE_INVALID", "SESSION_INVALID", "MAP_DUPLICATE_KEY", "UUID_INVALID",
                  "MESSAGE_METHOD_UNKNOWN", "MESSAGE_PARAMETER_COUNT_MISMATCH", "XENAPI_PLUGIN_FAILURE",
                  "XENAPI_MISSING_PLUGIN", "INTERNAL_ERROR", "HOST_OFFLINE"}


class Failure(Exception):
    def __init__(self, *details: str) -> None:
        super().__init__(details)
        self.details = [str(d) for d in details]


def _text(output: Optional[bytes]) -> str:
    """A plugin's output as the string xapi passes on (its bytes, as UTF-8 here)."""
    return (output or b"").decode("utf-8", "replace")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "SIG({})".format(number)


def _ref() -> str:
    return f"OpaqueRef:{uuidlib.uuid4()}"


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")

    def log_message(self, *args) -> None:  # quiet
        pass


_OCAML_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F][0-9a-fA-F_]*|0[oO][0-7][0-7_]*|0[bB][01][01_]*|[0-9][0-9_]*)\Z")


def _int_of_string(text: str) -> int:
    """OCaml's ``int_of_string`` (no spaces, ``_`` separators, 0x/0o/0b), ValueError as its Failure."""
    if not _OCAML_INT.match(text):
        raise ValueError(text)
    sign, digits = (-1, text[1:]) if text[0] == "-" else (1, text.lstrip("+"))
    digits = digits.replace("_", "")
    base = {"x": 16, "o": 8, "b": 2}.get(digits[1:2].lower(), 10) if digits[:1] == "0" else 10
    return sign * int(digits[2:] if base != 10 else digits, base)


def _vcpu_affinity(mask: Optional[str], host_mask: Optional[str], vcpus: int, pcpus: int) -> List[FrozenSet[int]]:
    """Each vCPU's hard affinity at a start, as xapi and xenopsd compute it ([]: unpinned).

    xapi (xapi_xenops.ml, ``scheduler_params``) splits ``VCPUs_params:mask`` on ';'
    (vCPU n gets list n) then on ','; if any piece is not an int the whole mask is
    ignored.  The host's ``guest_VCPUs_params:mask`` is one ','-list, ignored the same
    way; with both, each list is narrowed to it, and with only the host's, that is
    every vCPU's.  xenopsd (domain.ml, ``build_pre``) gives vCPUs past the last list
    the first one and drops CPUs the host does not have; Xen refuses an empty map."""
    try:
        lists = [[_int_of_string(c) for c in part.split(",")] for part in (mask or "").split(";")] if mask else []
    except ValueError:
        lists = []
    try:
        host_cpus = [_int_of_string(c) for c in host_mask.split(",")] if host_mask else []
    except ValueError:
        host_cpus = []
    if not lists:
        lists = [host_cpus] if host_cpus else []
    elif host_cpus:
        lists = [[c for c in cpus if c in host_cpus] for cpus in lists]
    if not lists:
        return []
    out = []
    for vcpu in range(vcpus):
        cpus = frozenset(c for c in (lists[vcpu] if vcpu < len(lists) else lists[0]) if 0 <= c < pcpus)
        if not cpus:
            raise ValueError("xenopsd: vcpu_setaffinity_hard of vCPU {}: no CPU in its mask (EINVAL)".format(vcpu))
        out.append(cpus)
    return out


def _wire_type_holds(wire: str, value) -> bool:
    """Does an XML-RPC value read as datamodel type ``wire`` (a string in xenapi.json)?
    As xapi's unmarshallers: a string or a ref only from a string (never a number, a
    boolean or a nil), a bool only from a boolean, a string map's values only strings."""
    if wire == "bool":
        return isinstance(value, bool)
    if wire == "string" or wire.endswith(" ref"):
        return isinstance(value, str)
    if wire == "(string -> string) map":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if wire.endswith(" set"):
        return isinstance(value, list) and all(_wire_type_holds(wire[:-len(" set")], v) for v in value)
    raise AssertionError("the loopback has no unmarshaller for " + wire)


class LoopbackXapi:
    """A pool of simulated hosts; start() serves it on 127.0.0.1."""

    def __init__(self, workdir: str, hosts: List[Tuple[str, Topology]], plugin_dir: str,
                 username: str = "root", password: str = "xenroot", scheduler: str = "credit2") -> None:
        self.workdir = workdir
        self.plugin_dir = plugin_dir
        self.username, self.password = username, password
        self.lock = threading.RLock()
        self.sessions: Dict[str, str] = {}
        self.pool_ref, self.pool_uuid = _ref(), str(uuidlib.uuid4())
        self.hosts: Dict[str, dict] = {}
        self.sims: Dict[str, SimHypervisor] = {}
        self.ledgers: Dict[str, str] = {}
        self.inventories: Dict[str, str] = {}
        self.vms: Dict[str, dict] = {}
        self.control_domains: Dict[str, str] = {}  # host ref -> its dom0's VM ref
        self.calls: Counter = Counter()  # XenAPI calls served, by method (what a client costs xapi)
        self.metrics: Dict[str, dict] = {}
        self.vgpus: Dict[str, str] = {}  # VGPU ref -> its VGPU_type's implementation
        for i, (name, topo) in enumerate(hosts):
            ref = _ref()
            path = os.path.join(workdir, f"{name}.json")
            self.sims[ref] = SimHypervisor.init(path, topo, scheduler, seed=i + 1, dom0_vcpus=1,
                                                dom0_memory=256 << 20, force=True)
            self.ledgers[ref] = path + ".ledger.db"
            host_uuid = str(uuidlib.uuid4())
            self.inventories[ref] = path + ".inventory"  # as /etc/xensource-inventory names a dom0's host
            dom0_uuid = str(uuidlib.uuid4())  # xapi's VM UUID for this host's dom0 (not Xen's all-zero handle)
            with open(self.inventories[ref], "w") as f:
                f.write("PRIMARY_DISK='/dev/sda'\nINSTALLATION_UUID='{}'\nCONTROL_DOMAIN_UUID='{}'\n"
                        "BUILD_NUMBER='loopback'\n".format(host_uuid, dom0_uuid))
            self.hosts[ref] = {"uuid": host_uuid, "name_label": name, "name_description": "",
                               "enabled": True, "address": "127.0.0.1", "hostname": name,
                               "API_version_major": "2", "API_version_minor": "21", "other_config": {},
                               "guest_VCPUs_params": {},
                               "resident_VMs": []}
            self._add_control_domain(ref, dom0_uuid)
        self.master = next(iter(self.hosts))
        self.clock_skew: Dict[str, float] = {}  # host ref -> seconds its clock is off (host.get_servertime)
        # tests' levers: hosts that lack the numa plugin (a rollout half done), and hosts a VM
        # cannot boot on (xapi's assert_can_boot_here: a local SR elsewhere, a missing network)
        self.without_plugin: Set[str] = set()
        # hosts that are down (xapi no longer hears their heartbeat): a call forwarded there
        # is HOST_OFFLINE [host], and no VM can boot there (HOST_NOT_LIVE, no parameters)
        self.offline: Set[str] = set()
        self.boot_refusals: Dict[Tuple[str, str], List[str]] = {}  # (vm ref, host ref) -> failure
        # a wedged xapi: calls of these methods ("*": every one but a login) get no answer
        # until unwedged (or the server stops); delays: seconds before a method answers
        self.wedged: Set[str] = set()
        self.delays: Dict[str, float] = {}
        self._unwedged = threading.Event()
        self._server: Optional[_Server] = None
        self.url = ""
        self.plugin_calls = 0

    # --- serving -------------------------------------------------------------------------
    def start(self) -> str:
        self._server = _Server(("127.0.0.1", 0), requestHandler=_Handler, allow_none=True, logRequests=False)
        self._server.register_instance(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        self._unwedged.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _dispatch(self, method: str, params: tuple):
        try:
            return {"Status": "Success", "Value": self._call(method, params)}
        except Failure as f:
            return {"Status": "Failure", "ErrorDescription": f.details}
        except Exception as err:  # a server bug: answer as xapi would
            return {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", f"{type(err).__name__}: {err}"]}

    def _call(self, method: str, params: tuple):
        # the parameters are the class's method's (its annotations are the datamodel's
        # types); the call goes to the instance's, which a test may have replaced
        spec = getattr(type(self), method.replace(".", "_"), None)
        impl = getattr(self, method.replace(".", "_"), None)
        if method == "session.login_with_password":  # never wedged, not counted
            return impl(*self._unmarshal(method, spec, params))
        self.calls[method] += 1  # counted as it arrives, answered or not
        if method in self.wedged or "*" in self.wedged:
            self._unwedged.wait()
        if method in self.delays:
            self._unwedged.wait(self.delays[method])
        if spec is None or method.startswith("_") or "." not in method:
            # xapi takes a first parameter for a session and checks it (the call may be an
            # extension's), then finds no extension of that name
            if params:
                self._check_session(params[0])
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        args = self._unmarshal(method, spec, params)
        self._check_session(args[0])  # after the parameters are read, as xapi's dispatcher does
        return impl(*args)

    @staticmethod
    def _unmarshal(method: str, spec, params: tuple) -> tuple:
        """The parameters as xapi's generated dispatcher reads them: their number (not
        counting the session: a MESSAGE_PARAMETER_COUNT_MISMATCH names the method, the
        number it takes and the number given), then each as its datamodel type; a value
        of another type fails the call (the unmarshaller's Failure, an INTERNAL_ERROR).
        A parameter with a default (the login's version and originator) may be left out,
        and parameters past it are ignored."""
        wire = list(inspect.signature(spec).parameters.values())[1:]  # (not self)
        required = [p for p in wire if p.default is inspect.Parameter.empty]
        session = 1 if wire and wire[0].annotation == "session ref" else 0
        if len(params) < len(required) or (len(required) == len(wire) and len(params) != len(wire)):
            raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, str(len(required) - session),
                          str(len(params) - session))
        params = tuple(params[:len(wire)]) + tuple(p.default for p in wire[len(params):])
        for p, value in zip(wire, params):
            if not _wire_type_holds(p.annotation, value):
                raise Failure("INTERNAL_ERROR", "Failure: {}: expected {} for {}, got {} {!r}".format(
                    method, p.annotation, p.name, type(value).__name__, value))
        return params

    def _check_session(self, session_id) -> None:
        with self.lock:
            if not isinstance(session_id, str):
                raise Failure("INTERNAL_ERROR", "Failure: expected a session ref, got {} {!r}".format(
                    type(session_id).__name__, session_id))
            if session_id not in self.sessions:
                raise Failure("SESSION_INVALID", session_id)

    @classmethod
    def methods(cls) -> List[str]:
        """The XenAPI methods served (for the datamodel test)."""
        names = []
        for attr in dir(cls):
            if attr.startswith(("session_", "pool_", "host_", "VM_metrics_", "VM_")) and callable(getattr(cls, attr)):
                klass, _, msg = attr.partition("_")
                if attr.startswith("VM_metrics_"):
                    klass, msg = "VM_metrics", attr[len("VM_metrics_"):]
                names.append(f"{klass}.{msg}")
        return names

    # --- helpers ----------------------------------------------------------------------------
    def _vm(self, ref: str) -> dict:
        vm = self.vms.get(ref)
        if vm is None:
            raise Failure("HANDLE_INVALID", "VM", ref)
        return vm

    def _host(self, ref: str) -> dict:
        host = self.hosts.get(ref)
        if host is None:
            raise Failure("HANDLE_INVALID", "host", ref)
        return host

    def add_vm(self, name: str, vcpus: int, memory: int, other_config: Optional[dict] = None,
               vcpus_params: Optional[dict] = None, domain_type: str = "hvm",
               dynamic_max: Optional[int] = None, shadow_multiplier: float = 1.0,
               platform: Optional[dict] = None, dynamic_min: Optional[int] = None) -> Tuple[str, str]:
        """Create a halted VM (what a template install does); returns (ref, uuid).
        ``memory``: its static maximum; ``dynamic_max``: its balloon's top (``memory``);
        ``dynamic_min``: its bottom and static minimum (the top); its target is the top."""
        ref, uuid, mref = _ref(), str(uuidlib.uuid4()), _ref()
        dynamic = memory if dynamic_max is None else dynamic_max
        bottom = dynamic if dynamic_min is None else dynamic_min
        with self.lock:
            self.metrics[mref] = {"uuid": str(uuidlib.uuid4()), "memory_actual": "0", "VCPUs_number": "0",
                                  "VCPUs_CPU": {}, "VCPUs_params": {}, "state": [], "other_config": {}}
            self.vms[ref] = {"uuid": uuid, "name_label": name, "name_description": "", "power_state": "Halted",
                             "is_a_template": False, "is_a_snapshot": False, "is_control_domain": False,
                             "HVM_boot_policy": "BIOS order" if domain_type == "hvm" else "", "VCPUs_max": str(vcpus),
                             "VCPUs_at_startup": str(vcpus), "VCPUs_params": dict(vcpus_params or {}),
                             "memory_static_max": str(memory), "memory_dynamic_max": str(dynamic),
                             "memory_dynamic_min": str(bottom), "memory_static_min": str(bottom),
                             "memory_target": str(dynamic), "HVM_shadow_multiplier": float(shadow_multiplier),
                             "other_config": dict(other_config or {}),
                             "resident_on": NULL, "affinity": NULL, "domid": "-1", "domain_type": domain_type,
                             "metrics": mref, "current_operations": {}, "attached_PCIs": [], "VGPUs": [],
                             "platform": dict(platform or {}), "snapshot_of": NULL,
                             "scheduled_to_be_resident_on": NULL}
        return ref, uuid

    def add_vgpu(self, vm: str, implementation: str) -> str:
        """A vGPU of a type with this implementation (passthrough, nvidia, gvt_g, mxgpu) on ``vm``."""
        with self.lock:
            ref = self._new_vgpu(implementation)
            self.vms[vm]["VGPUs"] = self.vms[vm]["VGPUs"] + [ref]
        return ref

    def _new_vgpu(self, implementation: str) -> str:
        ref = _ref()
        self.vgpus[ref] = implementation
        return ref

    def VGPU_get_type(self, session_id: "session ref", self_ref: "VGPU ref"):
        with self.lock:
            if self_ref not in self.vgpus:
                raise Failure("HANDLE_INVALID", "VGPU", self_ref)
            return "type:" + self_ref

    def VGPU_type_get_implementation(self, session_id: "session ref", self_ref: "VGPU_type ref"):
        with self.lock:
            vgpu = self_ref[len("type:"):]
            if not self_ref.startswith("type:") or vgpu not in self.vgpus:
                raise Failure("HANDLE_INVALID", "VGPU_type", self_ref)
            return self.vgpus[vgpu]

    def _forwarded_to(self, host: str) -> None:
        """A call xapi's master forwards to ``host`` (message_forwarding.ml): HOST_OFFLINE
        if that host is down, unless it is the master itself."""
        self._host(host)
        if host in self.offline and host != self.master:
            raise Failure("HOST_OFFLINE", host)

    def _add_control_domain(self, host: str, uuid: str) -> None:
        """Each host's dom0 has a VM record, as in xapi: running there as domain 0, listed by
        VM.get_all_records and the host's resident_VMs (self.control_domains[host])."""
        ref, _ = self.add_vm("Control domain on host: " + self.hosts[host]["name_label"], 1, 256 << 20,
                             domain_type="pv", other_config={"is_system_domain": "true"})
        record = self.vms[ref]
        record.update(uuid=uuid, is_control_domain=True, power_state="Running", resident_on=host, affinity=host,
                      domid="0")
        self.metrics[record["metrics"]].update(VCPUs_number="1", memory_actual=str(256 << 20))
        self.hosts[host]["resident_VMs"].append(ref)
        self.control_domains[host] = ref

    def plugin_env(self, host: str) -> dict:
        """What xapi gives a plugin (forkhelpers: PATH alone, no locale), with the test's
        python first on it, its import path, and what selects this host's simulator."""
        env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + "/sbin:/usr/sbin:/bin:/usr/bin",
               # dom0's Python 3.6 has neither UTF-8 mode nor locale coercion: in the C
               # locale it reads argv and writes stdout as ASCII; a newer Python is told to
               "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
        env.update((k, v) for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith(("XAPI_NUMA_", "COV")))
        env.update(XAPI_NUMA_BACKEND=f"sim:{self.sims[host].path}", XAPI_NUMA_LEDGER=self.ledgers[host],
                   XAPI_NUMA_INVENTORY=self.inventories[host],
                   XAPI_NUMA_XENAPI_URL=self.url)
        return env

    # --- session -------------------------------------------------------------------------------
    def session_login_with_password(self, uname: "string", pwd: "string", version: "string" = "1.0",
                                    originator: "string" = ""):
        if uname != self.username or pwd != self.password:
            raise Failure("SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure")
        ref = _ref()
        with self.lock:
            self.sessions[ref] = uname
        return ref

    def session_logout(self, session_id: "session ref"):
        with self.lock:
            self.sessions.pop(session_id, None)
        return ""

    # --- pool ------------------------------------------------------------------------------------
    def pool_get_all(self, session_id: "session ref"):
        return [self.pool_ref]

    def pool_get_master(self, session_id: "session ref", self_ref: "pool ref"):
        if self_ref != self.pool_ref:
            raise Failure("HANDLE_INVALID", "pool", self_ref)
        return self.master

    def pool_get_record(self, session_id: "session ref", self_ref: "pool ref"):
        if self_ref != self.pool_ref:
            raise Failure("HANDLE_INVALID", "pool", self_ref)
        return {"uuid": self.pool_uuid, "name_label": "loopback", "name_description": "", "master": self.master,
                "other_config": {}}

    # --- host ---------------------------------------------------------------------------------------
    def host_get_all(self, session_id: "session ref"):
        return list(self.hosts)

    def host_get_all_records(self, session_id: "session ref"):
        with self.lock:
            return {ref: dict(h) for ref, h in self.hosts.items()}

    def host_get_record(self, session_id: "session ref", self_ref: "host ref"):
        with self.lock:
            return dict(self._host(self_ref))

    def host_get_by_uuid(self, session_id: "session ref", uuid: "string"):
        for ref, h in self.hosts.items():
            if h["uuid"] == uuid:
                return ref
        raise Failure("UUID_INVALID", "host", uuid)

    def host_get_name_label(self, session_id: "session ref", self_ref: "host ref"):
        return self._host(self_ref)["name_label"]

    def host_get_guest_VCPUs_params(self, session_id: "session ref", self_ref: "host ref"):
        return dict(self._host(self_ref)["guest_VCPUs_params"])

    def host_set_guest_VCPUs_params(self, session_id: "session ref", self_ref: "host ref",
                                    value: "(string -> string) map"):
        with self.lock:
            self._host(self_ref)["guest_VCPUs_params"] = dict(value)
        return ""

    def host_set_name_label(self, session_id: "session ref", self_ref: "host ref", value: "string"):
        with self.lock:
            self._host(self_ref)["name_label"] = value
        return ""

    def host_get_servertime(self, session_id: "session ref", host: "host ref"):
        """That host's clock, as xapi answers it (whole seconds, UTC); ``clock_skew[ref]``
        sets a host's clock off by that many seconds."""
        self._host(host)
        now = time.time() + self.clock_skew.get(host, 0.0)
        return xmlrpc.client.DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(now)))

    def host_get_uuid(self, session_id: "session ref", self_ref: "host ref"):
        return self._host(self_ref)["uuid"]

    def host_get_API_version_major(self, session_id: "session ref", self_ref: "host ref"):
        return self._host(self_ref)["API_version_major"]

    def host_get_API_version_minor(self, session_id: "session ref", self_ref: "host ref"):
        return self._host(self_ref)["API_version_minor"]

    def host_call_plugin(self, session_id: "session ref", host: "host ref", plugin: "string", fn: "string",
                         args: "(string -> string) map"):
        """As xapi_plugins.ml: the plugin gets xapi's methodCall in argv[1], stdin from
        /dev/null and no deadline (PLUGIN_TIMEOUT here is the tests' own guard); a plugin
        killed or exiting non-zero is XENAPI_PLUGIN_FAILURE [status, stdout, stderr],
        whatever it wrote; otherwise stdout is read as xapi reads it
        (:mod:`xapi_plugin_wire`) and stderr is ignored."""
        self._forwarded_to(host)
        path = os.path.join(self.plugin_dir, plugin)
        if "/" in plugin or not os.access(path, os.X_OK) or host in self.without_plugin:
            raise Failure("XENAPI_MISSING_PLUGIN", plugin)
        with self.lock:
            self.plugin_calls += 1
        return self.run_plugin(host, session_id, fn, args, path)

    def run_plugin(self, host: str, session_id: str, fn: str, args: Dict[str, str],
                   path: Optional[str] = None) -> str:
        """Run a plugin (the numa plugin unless ``path``) for ``host`` as xapi does; its
        result string, or Failure as xapi would answer (tests call this to run the
        plugin alone, with no XenAPI call around it)."""
        call = wire.method_call(fn, session_id, args)
        try:
            done = subprocess.run([path or os.path.join(self.plugin_dir, "numa"), call], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=PLUGIN_TIMEOUT, env=self.plugin_env(host))
        except subprocess.TimeoutExpired as err:
            raise Failure("XENAPI_PLUGIN_FAILURE", "timeout", _text(err.stdout), _text(err.stderr)) from None
        stdout, stderr = _text(done.stdout), _text(done.stderr)
        if done.returncode != 0:
            status = "non-zero exit" if done.returncode > 0 else "signal: " + _signal_name(-done.returncode)
            raise Failure("XENAPI_PLUGIN_FAILURE", status, stdout, stderr)
        try:
            return wire.read_output(done.stdout, stdout)
        except wire.PluginAnswer as answer:
            raise Failure(*answer.details) from None

    # --- VM ------------------------------------------------------------------------------------------
    def VM_get_all(self, session_id: "session ref"):
        with self.lock:
            return list(self.vms)

    def VM_get_all_records(self, session_id: "session ref"):
        with self.lock:
            return {ref: dict(vm) for ref, vm in self.vms.items()}

    def VM_get_record(self, session_id: "session ref", self_ref: "VM ref"):
        with self.lock:
            vm = self._vm(self_ref)
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vm.items()}

    def VM_get_current_operations(self, session_id: "session ref", self_ref: "VM ref"):
        with self.lock:
            return dict(self._vm(self_ref)["current_operations"])

    def VM_get_by_uuid(self, session_id: "session ref", uuid: "string"):
        with self.lock:
            for ref, vm in self.vms.items():
                if vm["uuid"] == uuid:
                    return ref
        raise Failure("UUID_INVALID", "VM", uuid)

    def VM_get_by_name_label(self, session_id: "session ref", label: "string"):
        with self.lock:
            return [ref for ref, vm in self.vms.items() if vm["name_label"] == label]

    def VM_get_uuid(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["uuid"]

    def VM_get_power_state(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["power_state"]

    def VM_get_affinity(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["affinity"]

    def VM_get_resident_on(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["resident_on"]

    def VM_get_domid(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["domid"]

    def VM_get_is_control_domain(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["is_control_domain"]

    def VM_get_metrics(self, session_id: "session ref", self_ref: "VM ref"):
        return self._vm(self_ref)["metrics"]

    def _map_get(self, ref, field):
        with self.lock:
            return dict(self._vm(ref)[field])

    def _map_add(self, ref, field, key, value):
        with self.lock:
            m = self._vm(ref)[field]
            if key in m:
                raise Failure("MAP_DUPLICATE_KEY", "VM", field, ref, key)
            m[key] = value
        return ""

    def _map_remove(self, ref, field, key):
        with self.lock:
            self._vm(ref)[field].pop(key, None)
        return ""

    def VM_get_other_config(self, session_id: "session ref", self_ref: "VM ref"):
        return self._map_get(self_ref, "other_config")

    def VM_add_to_other_config(self, session_id: "session ref", self_ref: "VM ref", key: "string", value: "string"):
        return self._map_add(self_ref, "other_config", key, value)

    def VM_remove_from_other_config(self, session_id: "session ref", self_ref: "VM ref", key: "string"):
        return self._map_remove(self_ref, "other_config", key)

    def VM_get_VCPUs_params(self, session_id: "session ref", self_ref: "VM ref"):
        return self._map_get(self_ref, "VCPUs_params")

    def VM_add_to_VCPUs_params(self, session_id: "session ref", self_ref: "VM ref", key: "string", value: "string"):
        return self._map_add(self_ref, "VCPUs_params", key, value)

    def VM_remove_from_VCPUs_params(self, session_id: "session ref", self_ref: "VM ref", key: "string"):
        return self._map_remove(self_ref, "VCPUs_params", key)

    def _assert_can_boot_here(self, vm: str, host: str) -> None:
        """xapi's checks (xapi_vm_helpers.ml, ``assert_can_boot_here``), in its order: the
        host live, the host enabled, what tests refuse (a local SR elsewhere, a missing network), then
        the host's free memory for the VM's dynamic minimum (HOST_NOT_ENOUGH_FREE_MEMORY
        [needed, free]; the loopback counts no overhead) and its pCPUs for VCPUs_max
        (HOST_NOT_ENOUGH_PCPUS [vcpus, pcpus], unless platform:vcpu-unrestricted)."""
        record, h = self._vm(vm), self._host(host)
        if host in self.offline:
            raise Failure("HOST_NOT_LIVE")
        if not h["enabled"]:
            raise Failure("HOST_DISABLED", host)
        if (vm, host) in self.boot_refusals:
            raise Failure(*self.boot_refusals[(vm, host)])
        needed = int(record["memory_dynamic_min"])
        free = sum(m.free for m in self.sims[host].node_memory())
        if free < needed:
            raise Failure("HOST_NOT_ENOUGH_FREE_MEMORY", str(needed), str(free))
        vcpus, pcpus = int(record["VCPUs_max"]), len(self.sims[host].topology().cpus)
        if vcpus > pcpus and record["platform"].get("vcpu-unrestricted", "").lower() not in ("true", "1"):
            raise Failure("HOST_NOT_ENOUGH_PCPUS", str(vcpus), str(pcpus))

    def VM_assert_can_boot_here(self, session_id: "session ref", self_ref: "VM ref", host: "host ref"):
        with self.lock:
            self._assert_can_boot_here(self_ref, host)
        return ""

    def VM_start_on(self, session_id: "session ref", vm: "VM ref", host: "host ref", start_paused: "bool",
                    force: "bool"):
        with self.lock:
            record = self._vm(vm)
            h = self._host(host)
            if record["power_state"] != "Halted":
                raise Failure("VM_BAD_POWER_STATE", vm, "halted", record["power_state"].lower())
            self._assert_can_boot_here(vm, host)  # xapi asserts it again at the start
            if record["current_operations"]:  # xapi refuses a second start while one runs
                task, op = next(iter(record["current_operations"].items()))
                raise Failure("OTHER_OPERATION_IN_PROGRESS", "VM", vm, op, task)
            task = _ref()
            record["current_operations"] = {task: "start_on"}  # what xapi shows while it builds
            record["scheduled_to_be_resident_on"] = host
            mask = record["VCPUs_params"].get("mask")
            host_mask = h["guest_VCPUs_params"].get("mask")  # xapi narrows every guest's mask to it
            # xenopsd builds the target, at most the dynamic maximum (the balloon above it stays empty)
            vcpus, memory = int(record["VCPUs_max"]), int(record["memory_dynamic_max"])
            kind = resolved_domain_type(record["domain_type"], record["HVM_boot_policy"])
            # its overhead as xapi's memory model sizes it (overhead_mib: the static maximum, the multiplier)
            overhead = xapi_model(int(record["memory_static_max"]), vcpus, float(record["HVM_shadow_multiplier"]),
                                  record["domain_type"])
            # xapi's video_mib (platform:videoram, more with a vGPU): QEMU populates it after the build
            video = video_ram(kind, record["platform"].get("videoram", ""),
                              any(self.vgpus.get(v, "passthrough") != "passthrough" for v in record["VGPUs"]))
        domid = None
        try:
            sim = self.sims[host]
            per_vcpu = _vcpu_affinity(mask, host_mask, vcpus, len(sim.topology().cpus))
            # xenopsd's domain_create and build_pre: the overhead taken round every node with CPUs, then
            # each vCPU's hard affinity, then xenguest builds the RAM on their nodes (no libxl placement),
            # a pv_in_pvh VM's shim as PVH; QEMU populates the video RAM last
            domid = sim.create_shell(record["name_label"], vcpus, memory, uuid=record["uuid"], load="idle",
                                     dtype=build_type(kind), video=video, overhead=overhead)
            for vcpu, cpus in enumerate(per_vcpu):
                sim.set_vcpu_affinity(domid, vcpu, hard=cpus)
            sim.build(domid, paused=bool(start_paused))
        except NoCapacity:
            self._destroy_unbuilt(host, domid)
            free = sum(m.free for m in self.sims[host].node_memory())
            with self.lock:
                record.update(current_operations={}, scheduled_to_be_resident_on=NULL)
            raise Failure("HOST_NOT_ENOUGH_FREE_MEMORY", str(memory), str(free)) from None
        except (NumaError, ValueError) as err:
            self._destroy_unbuilt(host, domid)
            with self.lock:
                record.update(current_operations={}, scheduled_to_be_resident_on=NULL)
            raise Failure("INTERNAL_ERROR", str(err)) from None
        with self.lock:
            record.update(power_state="Paused" if start_paused else "Running", resident_on=host, domid=str(domid),
                          current_operations={}, scheduled_to_be_resident_on=NULL)
            self.hosts[host]["resident_VMs"].append(vm)
            self.metrics[record["metrics"]].update(VCPUs_number=str(vcpus), memory_actual=str(memory))
        return ""

    def _destroy_unbuilt(self, host: str, domid: Optional[int]) -> None:
        """A start that failed after its domain was created: xenopsd destroys the domain."""
        if domid is not None:
            self.sims[host].destroy(domid)

    def VM_hard_shutdown(self, session_id: "session ref", vm: "VM ref"):
        with self.lock:
            record = self._vm(vm)
            if record["power_state"] not in ("Running", "Paused"):
                raise Failure("VM_BAD_POWER_STATE", vm, "running", record["power_state"].lower())
            host, domid = record["resident_on"], int(record["domid"])
        self.sims[host].destroy(domid)
        with self.lock:
            record.update(power_state="Halted", resident_on=NULL, domid="-1")
            self.hosts[host]["resident_VMs"].remove(vm)
        return ""

    # --- copies (xapi_vm_clone.ml, xapi_vm_snapshot.ml): other_config goes with them whole --------
    def VM_clone(self, session_id: "session ref", vm: "VM ref", new_name: "string"):
        return self._copy_vm(vm, new_name, snapshot=False)

    def VM_snapshot(self, session_id: "session ref", vm: "VM ref", new_name: "string",
                    ignore_vdis: "VDI ref set"):
        return self._copy_vm(vm, new_name, snapshot=True)

    def _copy_vm(self, vm: str, name: str, snapshot: bool) -> str:
        """A new VM of ``vm``'s record, as xapi's clone makes one (a snapshot too): its own
        UUID, metrics and vGPUs, halted on no host, and a copy of everything else, the
        whole other_config among it; a snapshot is a template, ``snapshot_of`` the VM,
        and keeps what a revert puts back (``snapshot_metadata``).  A clone of a VM
        that is not halted is refused, as xapi refuses it (a snapshot is not)."""
        with self.lock:
            record = self._vm(vm)
            if not snapshot and record["power_state"] != "Halted":
                raise Failure("VM_BAD_POWER_STATE", vm, "halted", record["power_state"].lower())
            ref, mref, made = _ref(), _ref(), copy.deepcopy(record)
            self.metrics[mref] = dict(copy.deepcopy(self.metrics[record["metrics"]]), uuid=str(uuidlib.uuid4()))
            vgpus = [self._new_vgpu(self.vgpus[v]) for v in record["VGPUs"]]
            made.update(uuid=str(uuidlib.uuid4()), name_label=name, power_state="Halted", resident_on=NULL,
                        domid="-1", metrics=mref, current_operations={}, scheduled_to_be_resident_on=NULL,
                        VGPUs=vgpus, attached_PCIs=[], is_a_snapshot=snapshot,
                        is_a_template=snapshot or record["is_a_template"], snapshot_of=vm if snapshot else NULL,
                        snapshot_metadata=json.dumps({k: record[k] for k in REVERTED}) if snapshot else "")
            self.vms[ref] = made
        return ref

    def VM_revert(self, session_id: "session ref", snapshot: "VM ref"):
        """The snapshot's VM gets the fields it had when the snapshot was taken (its
        other_config among them), keeping its own UUID (xapi's revert_vm_fields).  The
        loopback reverts a halted VM only (xapi would stop a running one first)."""
        with self.lock:
            snap = self._vm(snapshot)
            if not snap["is_a_snapshot"]:
                raise Failure("OPERATION_NOT_ALLOWED", "VM.revert of {}: not a snapshot".format(snapshot))
            vm = snap["snapshot_of"]
            record = self._vm(vm)
            if record["power_state"] != "Halted":
                raise Failure("VM_BAD_POWER_STATE", vm, "halted", record["power_state"].lower())
            record.update(json.loads(snap["snapshot_metadata"]))
        return ""

    def VM_metrics_get_record(self, session_id: "session ref", self_ref: "VM_metrics ref"):
        with self.lock:
            m = self.metrics.get(self_ref)
            if m is None:
                raise Failure("HANDLE_INVALID", "VM_metrics", self_ref)
            return dict(m)

