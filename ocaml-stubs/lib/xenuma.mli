(** Bindings to libxenuma, xapi-numa's libxc extension: the NUMA queries
    and page-move primitives xenopsd needs, over the same C library the
    Python toolstack uses (../libxenuma).

    Every call talks to Xen through libxenctrl and releases the OCaml
    runtime lock while it does.  Failures raise {!Error} once, carrying the
    errno and what was being done; calls a caller must decide about (a
    hypercall the hypervisor lacks: [ENOSYS] / [EOPNOTSUPP]) return a
    {!outcome} instead.

    Every int argument is checked, never wrapped into its C type: a [domid]
    outside [0 .. 0x7FEF] (below DOMID_FIRST_RESERVED), a [node] or [vcpu]
    that is negative or does not fit 32 bits, a time or count outside the
    bounds its call gives raise [Error (EINVAL, _)] before anything is done.
    An array too long for libxenuma's uint32_t counts (2{^32} entries or
    more: {!move}'s [gfns], {!set_vnuma}'s arrays) raises [Invalid_argument]
    naming it, also before anything is done: no host or layout makes such a
    length right, it is the caller's bug (as [Array.make]'s is), not an
    answer of Xen's.

    A call on a handle first runs the OCaml signal handlers already pending,
    so it may raise what one raises (e.g. [Sys.Break]); it does so before it
    has done anything, the handle as usable as before.  A signal that comes
    during the call is handled after it ({!close} runs none: it closes).

    The types are those of xenopsd's [Topology.NUMA.make ~distances ~cpu_to_node
    ~node_cores] and [Softaffinity.plan]: distances as [int array array],
    [cpu_to_node] as [int array], [node_cores] as physical cores, per-node
    memory as [{size; free; claimed}].  One thing does not drop in: on a host
    with a CPU that is not online among those that are (smt=0, xen-hptool
    cpu-offline, an empty hotplug slot) [cpu_to_node] has [-1] for it, and
    NUMA.make indexes [distances] by every entry (Invalid_argument); such a
    CPU must reach NUMA.make under some node and be masked out afterwards
    (NUMA.apply_mask with {!online_cpus}), or be left out by the caller. *)

(** {1 Errors} *)

exception Error of Unix.error * string
(** [Error (errno, context)]: a libxenctrl or libxenuma call failed. *)

val error_of_errno : int -> Unix.error option
(** How an errno a result carries ({!move_result}'s [error]) reads: [None] for 0,
    otherwise as {!Error} maps it ([14] is [Unix.EFAULT], the failed copy back). *)

type error = Unix.error * string

type +'a outcome = ('a, error) result
(** For calls that may be missing from this hypervisor: [Error (ENOSYS, _)]
    or [Error (EOPNOTSUPP, _)] says "not here, use the fallback"; every other
    failure is still raised as {!Error}. *)

(** {1 The handle} *)

type handle
(** An open interface to Xen.  Closed by {!close}, or by the GC when it is
    no longer reachable. *)

val open_ : unit -> handle
(** Raises [Error (EACCES | EPERM, _)] when not privileged, [Error (ENOENT, _)]
    outside dom0. *)

val close : handle -> unit
(** Idempotent; later calls on the handle raise [Error (EBADF, _)].  Safe while
    another thread's call on the handle is in flight: that call ends normally,
    and the handle is freed when it does.  A pending signal does not stop it:
    the handle is closed, the signal's handler runs after. *)

val with_handle : (handle -> 'a) -> 'a
(** [with_handle f] opens a handle, runs [f], closes it whatever happens.
    Raises what {!open_} raises, and what [f] raises. *)

(** {1 Host} *)

type physinfo = {
    nr_cpus: int
  ; nr_nodes: int
  ; threads_per_core: int
  ; cores_per_socket: int
  ; total_pages: int64
  ; free_pages: int64
  ; outstanding_pages: int64  (** claimed and not yet allocated, host-wide *)
  ; sched_id: int  (** XEN_SCHEDULER_*: 5 credit, 6 credit2 *)
}

val physinfo : handle -> physinfo
(** The host's CPU and page counts (XEN_SYSCTL_physinfo).  Raises [Error] with
    the hypercall's errno ([EPERM | EACCES] where an XSM policy refuses it). *)

type node_memory = {size: int64; free: int64; claimed: int64}
(** Bytes.  [claimed] is always 0: this binding reads Xen's numainfo, which
    has no per-node claims, also on a XenServer hypervisor that takes them
    ({!features}' [node_claims] [`Native]), where xenopsd's
    [HostNuma.numa_get_meminfo] reads them through XenServer's own sysctl.
    There, [free] still counts memory other domains' node claims hold: a
    placement must subtract those itself, or find out from the claim's
    [ENOMEM].  A node id Xen reports as offline (XEN_INVALID_MEM_SZ) has
    [size] and [free] 0, so no placement ever picks it. *)

type topology = {
    distances: int array array  (** SLIT, [distances.(a).(b)], 10 on the diagonal *)
  ; cpu_to_node: int array  (** per CPU; -1 for an offline CPU *)
  ; node_cores: int array
        (** physical cores per node: the distinct (socket, core) of its online CPUs, the
            two threads of a core counted once (xenopsd's [node_cores], the Python
            adapter's [cores_per_node]); its CPUs are [List.length node_cpus.(n)] *)
  ; node_cpus: int list array  (** the CPUs of each node, ascending *)
  ; memory: node_memory array
}

val topology : handle -> topology
(** Readings one after the other: nodes (distances and memory), then CPUs, then
    physinfo's count of online CPUs.  They are not one snapshot: a CPU or node
    brought on- or offline between them shows in one and not the other (a CPU
    whose node has no row in [distances] is in no [node_cpus]).  There is always
    at least one node: Xen reports node 0 on every host (one without NUMA is one
    node), so an answer of none raises [Error (EIO, _)] -- nothing to place on,
    not an empty host.  Xen gives a parked CPU (a host booted with smt=0, a CPU
    taken offline by xen-hptool) its node as it does an online one: where more
    CPUs have a node than physinfo counts online, the online CPUs are read as
    {!online_cpus} reads them, and every other CPU is offline here: [-1] in
    [cpu_to_node], in no [node_cpus], not counted in [node_cores].  Where
    physinfo counts them all, the CPU pools are not read. *)

val online_cpus : handle -> int list
(** The online CPUs, ascending: those of every CPU pool and those in none (the
    free ones, e.g. taken out of Pool-0 by [xl cpupool-cpu-remove]).  A parked
    CPU is in neither.  One call per pool and one for the free CPUs, one after
    the other: not one snapshot.  Raises [Error] with the errno of the read
    that failed (the context names it). *)

val node_memory : handle -> node_memory array
(** One entry per node, at least one: raises [Error (EIO, _)] where the host
    reports none, as {!topology} does. *)

val node_free_below : handle -> node:int -> width:int -> int64
(** Bytes free on [node] below 2{^[width]} (xc_availheap), as the Python
    adapter reads Xen's DMA zone: at Xen's DMA width, memory Xen gives an
    ordinary allocation only once every node is out of the rest, so a build
    with node affinity to [node] spills to other nodes before it gets any:
    free, but no room for a VM placed there.  The width is [dma_bits=] on
    {!xen_commandline}, else (on a host of more than one node) a quarter of
    the first node with memory, rounded up to a power of two, at most 32
    (xapi_numa/core/dma_zone.py has the rule as Xen parses it); a host of
    one node without [dma_bits=], or a width of 52 or more, has no zone.
    [width] 1 to 64 and a node the host has (as numainfo reports them), else
    [Error (EINVAL, _)] and no zone is read. *)

val xen_commandline : handle -> string
(** Xen's own command line (XENVER_commandline; up to 1023 bytes), where
    [dma_bits=] is set.  [Error (EPERM | EACCES, _)] where an XSM policy
    refuses it: Xen's default width applies then, as without [dma_bits=]. *)

(** {1 Domains and vCPUs} *)

type domain = {
    domid: int
  ; flags: int  (** XN_DOM_* of libxenuma.h: see {!is_hvm}, {!is_paused} *)
  ; tot_pages: int64
  ; max_pages: int64
  ; domain_outstanding_pages: int64
  ; online_vcpus: int
  ; max_vcpu_id: int
        (** the highest vCPU id; -1 for a domain with no vCPU yet (Xen's
            XEN_INVALID_MAX_VCPU_ID), so [for v = 0 to max_vcpu_id] visits none *)
  ; cpupool: int
  ; uuid: string  (** 16 raw bytes *)
}

val domains : handle -> domain array
(** Every domain Xen has, by ascending domid, dying ones included (see [flags]).
    Read 256 at a time, so not one snapshot: a domain created or destroyed
    meanwhile may be missing.  Raises [Error] with the errno of the failed
    read ([EPERM | EACCES] without the privilege). *)

val is_hvm : domain -> bool  (** HVM or PVH: translated, its memory can move *)

val is_pvh : domain -> bool  (** PVH: HVM without the platform devices emulated *)

val is_paused : domain -> bool  (** paused when listed (by a toolstack, or a mover's window) *)

val uuid_string : domain -> string  (** "xxxxxxxx-xxxx-..." *)

type vcpu = {
    online: bool
  ; blocked: bool
  ; running: bool
  ; cpu: int  (** the pCPU it runs on, or last ran on *)
  ; cpu_time_ns: int64  (** time it has run since the domain was created *)
}

val vcpu_info : handle -> domid:int -> vcpu:int -> vcpu
(** Raises [Error (ESRCH, _)] for no such domain (or vCPU), [Error (EINVAL, _)]
    for a vCPU beyond the domain's. *)

val vcpu_affinity : handle -> domid:int -> vcpu:int -> bool array * bool array
(** (hard, soft): one entry per CPU the host may have.  Raises [Error (ESRCH, _)]
    for no such domain, [Error (EINVAL, _)] for a vCPU beyond the domain's. *)

val set_vcpu_affinity :
  handle -> domid:int -> vcpu:int -> ?hard:bool array -> ?soft:bool array -> unit -> unit
(** Sets those given; neither raises [Invalid_argument] naming them (a call
    that would set nothing is the caller's bug, not a success).  A CPU the
    host cannot have (at or past its highest CPU id + 1, hotplug CPUs
    included: {!vcpu_affinity}'s arrays run on to a whole byte) raises
    [Error (EINVAL, _)] before the hypercall, as does a map Xen refuses (no
    CPU of the domain's pool). *)

val node_affinity : handle -> domid:int -> bool array
(** Where Xen allocates the domain's memory from: one entry per node of Xen's
    MAX_NUMNODES (every entry set: automatic placement).  Raises
    [Error (ESRCH, _)] for no such domain. *)

val set_node_affinity : handle -> domid:int -> bool array -> unit
(** Where Xen allocates the domain's memory from now on.  A node the host
    lacks (not one of its online nodes, as numainfo reports them) raises
    [Error (EINVAL, _)].  A map with all of Xen's MAX_NUMNODES entries set
    (the length of {!node_affinity}'s) is Xen's automatic placement. *)

val pause : handle -> domid:int -> unit
(** Pauses the domain until {!unpause} (Xen counts the toolstack's pauses: each
    needs its own unpause).  Raises [Error (ESRCH, _)] for no such domain,
    [Error (EINVAL, _)] for the caller's own domain (dom0), which Xen does not
    let pause itself. *)

val unpause : handle -> domid:int -> unit
(** Gives back one {!pause}.  Raises [Error (EINVAL, _)] when the toolstack holds
    no pause of the domain (Xen's count is 0), [Error (ESRCH, _)] for no such
    domain. *)

(** {1 Memory per node and claims} *)

type features = {
    node_pages: [`Native | `Fallback | `Unavailable]
        (** [`Native]: XenServer's per-domain node-page query;
            [`Fallback]: debug key 'u' (see {!node_pages_of_dump}) *)
  ; node_claims: [`Native | `Fallback | `Unavailable]
  ; claims: [`Native | `Fallback | `Unavailable]
}

val features : handle -> features
(** What this host offers; XenServer's patched calls are looked up at run
    time in the loaded libxenctrl, so one binary serves stock and patched Xen.
    Raises nothing but what every call on a handle does ({!close}'s
    [Error (EBADF, _)]): a probe that fails reads as the fallback. *)

val claim : handle -> domid:int -> ?node:int -> int64 -> unit outcome
(** [claim h ~domid ?node pages] stakes a claim of [pages] (0 cancels), on
    one node where the hypervisor has per-node claims ([Error (ENOSYS, _)]
    otherwise), host-wide without [node] (no node number means host-wide).
    Raises [Error (ENOMEM, _)] when there is not that much memory free (on
    that node), [Error (ESRCH, _)] for no such domain (Xen's claim answers
    EINVAL there: the stub then asks whether the domain exists),
    [Error (EINVAL, _)] for a node the host lacks, negative [pages], or a
    claim Xen refuses: one while the domain holds a claim already (Xen keeps
    one per domain, host-wide or on a node: claim 0 first to replace it; the
    context says so), one not above the domain's current pages, or above its
    maximum. *)

val node_pages : handle -> domid:int -> nr_nodes:int -> int64 array outcome
(** Pages of the domain on each node, with the patched query;
    [Error (ENOSYS, _)] on stock Xen: use {!capture_dump}.  [nr_nodes]: 0 to
    64 (Xen's MAX_NUMNODES). *)

val capture_dump : ?timeout_ms:int -> handle -> string
(** Fires debug key 'u' and returns only the console output it produced,
    waiting up to [timeout_ms] (default 2000; 0 to 600000) for it to end.
    The dump walks every page of every domain under a lock: call it rarely.
    Raises [Error (EAGAIN, _)] when the key produced nothing in that time, or
    when what it produced lacks the dump's header: a dump larger than Xen's
    console ring (conring_size on Xen's command line, 16 KiB by default) has
    lost its head before it could be read, so no domain's count in it can be
    trusted to be there. *)

val node_pages_of_dump : string -> domid:int -> nr_nodes:int -> int64 array * int64
(** Pure: (pages per node, total) of one domain in a capture.  Raises
    [Error (ENOENT, _)] if the domain is not in it, [Error (ENODATA, _)] if the
    text holds no dump header (a {!capture_dump} text always does),
    [Error (EAGAIN, _)] if the dump is truncated. *)

(** {1 Moving memory between nodes (PVH/HVM guests)} *)

(** What a gfn is, for moving. *)
type gfn_class = Ram | Not_ram | Magic | Granted | Vcpu_info | Evtchn | Changed

val gfn_class_of_char : char -> gfn_class
(** Pure, never raises: a byte no class has (none {!scan} writes) is [Not_ram]. *)

type scan_stats = {
    typed: int64
  ; busy_grants: int64
  ; types_ns: int64
  ; grants_ns: int64
  ; layouts_ns: int64
}

val movable_check : handle -> domid:int -> unit
(** Raises [Error (EPROTOTYPE, _)] for a PV guest, [Error (EOPNOTSUPP, _)] for
    one with populate-on-demand entries outstanding, [Error (ESRCH, _)] for one
    that is gone or dying. *)

val scan : ?probe_ms:int -> ?record:string -> handle -> domid:int -> Bytes.t * scan_stats
(** One byte per gfn (see {!gfn_class_of_char}) from 0 as far as the scan
    classified (the gfns typed, up to the last RAM page, and the toolstack's
    magic pages); every gfn past them is [Not_ram].  Not sized by the highest
    gfn, which a high MMIO or foreign mapping may put far past the RAM.
    With [probe_ms] (1 to 60000; 0, the default, for none) the domain is paused that long and the gfns
    that changed meanwhile are marked [Changed].  A probe needs [record]:
    the batch record kept for that pause, so {!recover} gives it back if the
    process dies meanwhile; without one it raises [Error (EINVAL, _)] before
    any pause.  [record] is unused without a probe (not checked either: a NUL
    in it is refused only with a probe).  A highest gfn that
    libxenctrl gives at or past 2^36 (more than Xen lets an HVM or PVH guest
    address: 48 bits) raises [Error (E2BIG, _)] before anything is allocated
    for it. *)

type stage = None_ | Copy_out | Release | Verify | Populate | Copy_back | Unpause | Done

type move_result = {
    released: int64
  ; moved: int64
  ; fallback: int64
  ; lost: int64  (** must be 0 *)
  ; superpages: int64
  ; not_freed: int64
  ; stuck_first: int64
  ; stuck_count: int64
  ; raised_max: int64
  ; pause_ns: int64
  ; stage: stage
  ; error: Unix.error option
  ; granted: int64
        (** gfns left where they were: granted to another domain by the pause, or
            not populated in the domain (given back by its balloon driver since
            the caller's scan, or never there) *)
  ; recognised: int64
        (** gfns left where they were: by the pause their contents were a page Xen
            keeps mapped (a vcpu_info, an event-channel page) the scan had not seen *)
  ; max_restored: int64
        (** {!recover}: the toolstack's max_pages (pages), set again from a raise a
            dead mover (or recoverer) left in force; 0: none was (0 from {!move}) *)
  ; max_unknown: bool
        (** {!recover}: the record is from before raises were recorded (batch record
            version 3 or 4) and its batch was past the copy, where one may have been in
            force: max_pages is left as it is (false from {!move}) *)
}

val move : ?verify_chunk:int -> ?allow_fallback:bool -> ?uuid:string -> record:string -> handle -> domid:int ->
  gfns:int array -> node:int -> move_result
(** Moves [gfns] (ascending, from {!scan}'s [Ram]) to [node] in one pause
    window (runtime lock released), under the batch record [record]: a file
    on tmpfs holding the saved contents and how far the batch got, removed
    when it is over, from which {!recover} puts the guest back together if
    the process dies in the window (required: without it such a death would
    leave the guest paused, its contents in no file).  [verify_chunk] (default 16; 0 for the
    whole batch): how many pages are released between checks that they
    were freed.  A failure inside the window is in the result ([error],
    [stage]), the guest put back together and unpaused, except when its
    contents could not all be put back ([lost] > 0): the guest then stays
    paused and {!recover} on [record] puts the contents back and unpauses
    it; when the unpause itself fails ([stage] unpause) [record] is kept for
    {!recover} to give the pause back.  A refusal before any pause is
    raised: [Error (EINVAL, _)] (a node the host lacks, gfns not ascending
    or negative, a map Xen refused for another reason: the context says which,
    naming the gfn where it can), [Error (EPROTOTYPE | EOPNOTSUPP | ESRCH, _)] as
    {!movable_check}, [Error (EBUSY, _)] (a live mover holds [record]),
    [Error (EEXIST, _)] (a dead mover's record awaits {!recover}).  With [uuid]
    (the domain's {!domain}[.uuid], 16 raw bytes, read when its gfns were
    scanned) the domain is checked to be that one once the mover holds it: a
    domid given meanwhile to another domain raises [Error (EUNKNOWNERR 116
    (ESTALE), _)] before any pause, nothing moved (as the Python adapter's
    move does); a [uuid] of another length raises [Error (EINVAL, _)].
    [gfns] with 2{^32} entries or more raises [Invalid_argument] naming it. *)

type recovered = Nothing_to_do | Unpaused of move_result | Domain_gone | Found_running of move_result

val recover : handle -> record:string -> recovered
(** Finishes what a dead mover (or a batch that could not put every page's
    contents back) left at [record].  [Found_running]: someone unpaused the
    guest meanwhile; only its gfns without a frame were backed and given their
    saved contents ([fallback] of them), the others keep what the guest wrote.
    Raises [Error (EBUSY, _)] while its mover is alive. *)

val record_busy : string -> bool
(** Does a live mover hold this batch record?  [false] for a path with no file.
    Raises [Error (EINVAL, _)] for a path holding a NUL, [Error] with the errno
    of the open or lock that failed otherwise ([EACCES], ...). *)

type vmemrange = { start : int64; stop : int64; vnode : int }
(** Guest-physical bytes [\[start, stop)] of one vnode. *)

val set_vnuma :
  handle -> domid:int -> ranges:vmemrange array -> vdistance:int array array ->
  vcpu_to_vnode:int array -> vnode_to_pnode:int array -> unit
(** Sets the vNUMA layout of a built domain before it first runs (what a
    domain builder such as xenopsd's would do): the ranges of each vnode, the
    vnode distance matrix, each vCPU's vnode and each vnode's pnode.  The
    vnodes are those of [vnode_to_pnode]; [vdistance] must have one row per
    vnode, each with one entry per vnode.  An inconsistent layout (a ragged
    or non-square [vdistance], an index out of range, a vnode without memory
    or vCPU, ranges unaligned, overlapping or out of order, a negative entry)
    raises [Error (EINVAL, _)] before any hypercall.  [ranges],
    [vcpu_to_vnode] or [vnode_to_pnode] with 2{^32} entries or more (more than
    libxenuma's uint32_t counts hold) raises [Invalid_argument] naming that
    argument, before anything is done. *)

type vnuma_layout = {
    ranges : vmemrange array  (** ascending, as Xen holds them *)
  ; vdistance : int array array  (** [vdistance.(a).(b)], one row per vnode *)
  ; vcpu_to_vnode : int array  (** one entry per vCPU *)
}
(** A domain's vNUMA layout as Xen holds it: what {!set_vnuma} set, in the
    same form, less [vnode_to_pnode] -- Xen does not report which pnode backs
    a vnode through this call (debug key 'u' prints it: {!capture_dump}). *)

val vnuma : handle -> domid:int -> vnuma_layout option
(** Reads back the layout of a domain (XENMEM_get_vnumainfo); [None] when it
    has none (Xen's EOPNOTSUPP).  Xen first answers ENOBUFS with the sizes;
    the stub asks again with room, and again if the layout was replaced in
    between, up to 4 calls in all, then raises [Error (EAGAIN, _)].  Other
    failures are raised: [Error (ESRCH, _)] for no such domain, as every
    call does. *)
