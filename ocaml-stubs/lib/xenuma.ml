(* Bindings to libxenuma: see xenuma.mli. *)

exception Error of Unix.error * string

let () = Callback.register_exception "Xenuma.Error" (Error (Unix.E2BIG, ""))

(* The errno an Error carries, as a number (Unix.error has no such function) *)
external errno_of_error : Unix.error -> int = "stub_xenuma_errno_of_error"

(* Printexc's own printer shows a Unix.error by its constructor's index
   ("Error(12, ...)" for EINVAL, errno 22), and xenopsd logs, and fails a VM
   start with, Printexc.to_string of what a placement raised. *)
let () =
  Printexc.register_printer (function
    | Error (e, ctx) ->
        Some (Printf.sprintf "Xenuma.Error(errno %d: %s, %S)" (errno_of_error e) (Unix.error_message e) ctx)
    | _ -> None)

type error = Unix.error * string

type +'a outcome = ('a, error) result

(* Missing hypercalls come back as a result; everything else stays raised. *)
let missing f =
  try Ok (f ()) with
  | Error (((Unix.ENOSYS | Unix.EOPNOTSUPP) as e), ctx) -> Result.Error (e, ctx)

type handle

external open_ : unit -> handle = "stub_xenuma_open"

external close : handle -> unit = "stub_xenuma_close"

let with_handle f =
  let h = open_ () in
  Fun.protect ~finally:(fun () -> close h) (fun () -> f h)

type physinfo = {
    nr_cpus: int
  ; nr_nodes: int
  ; threads_per_core: int
  ; cores_per_socket: int
  ; total_pages: int64
  ; free_pages: int64
  ; outstanding_pages: int64
  ; sched_id: int
}

external physinfo : handle -> physinfo = "stub_xenuma_physinfo"

type node_memory = {size: int64; free: int64; claimed: int64}

type topology = {
    distances: int array array
  ; cpu_to_node: int array
  ; node_cores: int array
  ; node_cpus: int list array
  ; memory: node_memory array
}

external numainfo_raw : handle -> int * (int64 * int64) array * int array array
  = "stub_xenuma_numainfo"

external cputopo_raw : handle -> (int * int * int) array = "stub_xenuma_cputopo"

(* XEN_INVALID_MEM_SZ is (~0U): an offline node id below the highest online one *)
let invalid_mem_sz = 0xFFFF_FFFFL

let memory_of (size, free) =
  (* per-node claims are not reported by stock Xen 4.17 *)
  if size = invalid_mem_sz then {size= 0L; free= 0L; claimed= 0L}
  else {size; free; claimed= 0L}

let node_memory h =
  let _, mem, _ = numainfo_raw h in
  Array.map memory_of mem

external node_free_below_raw : handle -> int -> int -> int64 = "stub_xenuma_node_free_below"

let node_free_below h ~node ~width = node_free_below_raw h node width

external xen_commandline : handle -> string = "stub_xenuma_xen_commandline"

external online_cpus_raw : handle -> bool array = "stub_xenuma_online_cpus"

let online_cpus h =
  let online = online_cpus_raw h in
  List.filter (fun cpu -> online.(cpu)) (List.init (Array.length online) Fun.id)

(* cputopoinfo lists the CPUs up to the last online one and gives every present one
   its node, a parked one (smt=0, xen-hptool cpu-offline) too; physinfo counts only
   the online ones.  Only where more CPUs have a node than that are the online ones
   read (every pool's and the free ones), and the others marked offline. *)
let parked_marked h cpu_to_node =
  let with_node = Array.fold_left (fun k node -> if node >= 0 then k + 1 else k) 0 cpu_to_node in
  if with_node <= (physinfo h).nr_cpus then cpu_to_node
  else
    let online = online_cpus_raw h in
    Array.mapi
      (fun cpu node -> if cpu < Array.length online && online.(cpu) then node else -1)
      cpu_to_node

(* A node's physical cores: the distinct (socket, core) of its online CPUs, so the two
   threads of a core count once (xenopsd's node_cores, the Python adapter's cores_per_node). *)
let cores_of topo cpus =
  List.length
    (List.sort_uniq compare (List.map (fun cpu -> let core, socket, _ = topo.(cpu) in (socket, core)) cpus))

let topology h =
  let n, mem, distances = numainfo_raw h in
  let topo = cputopo_raw h in
  let cpu_to_node = parked_marked h (Array.map (fun (_, _, node) -> node) topo) in
  let node_cpus = Array.make n [] in
  for cpu = Array.length cpu_to_node - 1 downto 0 do
    let node = cpu_to_node.(cpu) in
    if node >= 0 && node < n then node_cpus.(node) <- cpu :: node_cpus.(node)
  done ;
  { distances
  ; cpu_to_node
  ; node_cores= Array.map (cores_of topo) node_cpus
  ; node_cpus
  ; memory= Array.map memory_of mem }

type domain = {
    domid: int
  ; flags: int
  ; tot_pages: int64
  ; max_pages: int64
  ; domain_outstanding_pages: int64
  ; online_vcpus: int
  ; max_vcpu_id: int
  ; cpupool: int
  ; uuid: string
}

external domains : handle -> domain array = "stub_xenuma_domains"

(* XN_DOM_* of libxenuma.h *)
let is_hvm d = d.flags land 0x2 <> 0

let is_pvh d = d.flags land 0x200 <> 0

let is_paused d = d.flags land 0x8 <> 0

let uuid_string d =
  let hex i = Printf.sprintf "%02x" (Char.code d.uuid.[i]) in
  let part a b = String.concat "" (List.init (b - a) (fun i -> hex (a + i))) in
  String.concat "-" [part 0 4; part 4 6; part 6 8; part 8 10; part 10 16]

type vcpu = {online: bool; blocked: bool; running: bool; cpu: int; cpu_time_ns: int64}

external vcpu_info_raw : handle -> int -> int -> vcpu = "stub_xenuma_vcpu_info"

let vcpu_info h ~domid ~vcpu = vcpu_info_raw h domid vcpu

external vcpu_affinity_raw : handle -> int -> int -> bool array * bool array
  = "stub_xenuma_vcpu_affinity"

let vcpu_affinity h ~domid ~vcpu = vcpu_affinity_raw h domid vcpu

external set_vcpu_affinity_raw :
  handle -> int -> int -> bool array option -> bool array option -> unit
  = "stub_xenuma_set_vcpu_affinity"

let set_vcpu_affinity h ~domid ~vcpu ?hard ?soft () =
  (* neither map: libxenuma would do nothing and say it was done *)
  if hard = None && soft = None then
    invalid_arg "Xenuma.set_vcpu_affinity: ?hard, ?soft: neither map given (at least one is needed)" ;
  set_vcpu_affinity_raw h domid vcpu hard soft

external node_affinity_raw : handle -> int -> bool array = "stub_xenuma_node_affinity"

let node_affinity h ~domid = node_affinity_raw h domid

external set_node_affinity_raw : handle -> int -> bool array -> unit
  = "stub_xenuma_set_node_affinity"

let set_node_affinity h ~domid nodes = set_node_affinity_raw h domid nodes

external pause_raw : handle -> int -> bool -> unit = "stub_xenuma_pause"

let pause h ~domid = pause_raw h domid true

let unpause h ~domid = pause_raw h domid false

type features = {
    node_pages: [`Native | `Fallback | `Unavailable]
  ; node_claims: [`Native | `Fallback | `Unavailable]
  ; claims: [`Native | `Fallback | `Unavailable]
}

external features_raw : handle -> int * int * int = "stub_xenuma_features"

let feature = function 2 -> `Native | 1 -> `Fallback | _ -> `Unavailable

let features h =
  let node_pages, node_claims, claims = features_raw h in
  {node_pages= feature node_pages; node_claims= feature node_claims; claims= feature claims}

(* None: host-wide; no node number stands for it (a negative one is refused) *)
external claim_raw : handle -> int -> int option -> int64 -> unit = "stub_xenuma_claim"

let claim h ~domid ?node pages = missing (fun () -> claim_raw h domid node pages)

external node_pages_raw : handle -> int -> int -> int64 array = "stub_xenuma_node_pages_native"

let node_pages h ~domid ~nr_nodes = missing (fun () -> node_pages_raw h domid nr_nodes)

external capture_dump_raw : handle -> int -> string = "stub_xenuma_udump_capture"

let capture_dump ?(timeout_ms = 2000) h = capture_dump_raw h timeout_ms

external udump_parse : string -> int -> int -> int64 array * int64 = "stub_xenuma_udump_parse"

let node_pages_of_dump text ~domid ~nr_nodes = udump_parse text domid nr_nodes

type gfn_class = Ram | Not_ram | Magic | Granted | Vcpu_info | Evtchn | Changed

(* XN_GFN_* of libxenuma.h *)
let gfn_class_of_char c =
  match Char.code c with
  | 0 -> Ram
  | 2 -> Magic
  | 3 -> Granted
  | 4 -> Vcpu_info
  | 5 -> Evtchn
  | 6 -> Changed
  | _ -> Not_ram

type scan_stats = {
    typed: int64
  ; busy_grants: int64
  ; types_ns: int64
  ; grants_ns: int64
  ; layouts_ns: int64
}

external mig_check : handle -> int -> unit = "stub_xenuma_mig_check"

let movable_check h ~domid = mig_check h domid

external mig_scan : handle -> int -> int -> string option -> Bytes.t * scan_stats
  = "stub_xenuma_mig_scan"

let scan ?(probe_ms = 0) ?record h ~domid = mig_scan h domid probe_ms record

type stage = None_ | Copy_out | Release | Verify | Populate | Copy_back | Unpause | Done

type raw_result = {
    r_released: int64
  ; r_moved: int64
  ; r_fallback: int64
  ; r_lost: int64
  ; r_superpages: int64
  ; r_not_freed: int64
  ; r_stuck_first: int64
  ; r_stuck_count: int64
  ; r_raised_max: int64
  ; r_pause_ns: int64
  ; r_stage: int
  ; r_errno: int
  ; r_granted: int64
  ; r_recognised: int64
  ; r_max_restored: int64
  ; r_max_unknown: bool
}

type move_result = {
    released: int64
  ; moved: int64
  ; fallback: int64
  ; lost: int64
  ; superpages: int64
  ; not_freed: int64
  ; stuck_first: int64
  ; stuck_count: int64
  ; raised_max: int64
  ; pause_ns: int64
  ; stage: stage
  ; error: Unix.error option
  ; granted: int64
  ; recognised: int64
  ; max_restored: int64
  ; max_unknown: bool
}

(* errno numbers the results carry, as Unix.error: the same mapping as Error's *)
external unix_error_of_code : int -> Unix.error = "stub_xenuma_unix_error"

let error_of_errno = function 0 -> None | n -> Some (unix_error_of_code n)

let stage_of_int = function
  | 1 -> Copy_out
  | 2 -> Release
  | 3 -> Verify
  | 4 -> Populate
  | 5 -> Copy_back
  | 6 -> Unpause
  | 7 -> Done
  | _ -> None_

let result_of_raw r =
  { released= r.r_released
  ; moved= r.r_moved
  ; fallback= r.r_fallback
  ; lost= r.r_lost
  ; superpages= r.r_superpages
  ; not_freed= r.r_not_freed
  ; stuck_first= r.r_stuck_first
  ; stuck_count= r.r_stuck_count
  ; raised_max= r.r_raised_max
  ; pause_ns= r.r_pause_ns
  ; stage= stage_of_int r.r_stage
  ; error= error_of_errno r.r_errno
  ; granted= r.r_granted
  ; recognised= r.r_recognised
  ; max_restored= r.r_max_restored
  ; max_unknown= r.r_max_unknown }

external mig_move : handle -> int -> int array -> int -> int -> int -> string -> string option -> raw_result
  = "stub_xenuma_mig_move_bytecode" "stub_xenuma_mig_move_native"

let allow_fallback_flag = 0x1 (* XN_MIG_ALLOW_FALLBACK *)

let move ?(verify_chunk = 16) ?(allow_fallback = false) ?uuid ~record h ~domid ~gfns ~node =
  let flags = if allow_fallback then allow_fallback_flag else 0 in
  result_of_raw (mig_move h domid gfns node verify_chunk flags record uuid)

type recovered = Nothing_to_do | Unpaused of move_result | Domain_gone | Found_running of move_result

external mig_recover : handle -> string -> int * raw_result = "stub_xenuma_mig_recover"

let recover h ~record =
  match mig_recover h record with
  | 1, r -> Unpaused (result_of_raw r)
  | 2, _ -> Domain_gone (* XN_MIG_RECOVERED_GONE *)
  | 3, r -> Found_running (result_of_raw r) (* XN_MIG_RECOVERED_RUNNING *)
  | _ -> Nothing_to_do

external record_busy : string -> bool = "stub_xenuma_mig_record_busy"

type vmemrange = { start : int64; stop : int64; vnode : int }

(* vdistance as it is: the stub checks every row, which a flattened matrix could not show *)
external set_vnuma_raw : handle -> int -> vmemrange array -> int array array * int array * int array -> unit
  = "stub_xenuma_set_vnuma"

let set_vnuma h ~domid ~ranges ~vdistance ~vcpu_to_vnode ~vnode_to_pnode =
  set_vnuma_raw h domid ranges (vdistance, vcpu_to_vnode, vnode_to_pnode)

type vnuma_layout = {
    ranges : vmemrange array
  ; vdistance : int array array
  ; vcpu_to_vnode : int array
}

(* The stub sizes and fills in one go (Xen's ENOBUFS answer handled there);
   EOPNOTSUPP, Xen's "this domain has no layout", comes back as None. *)
external vnuma_raw : handle -> int -> vnuma_layout option = "stub_xenuma_get_vnuma"

let vnuma h ~domid = vnuma_raw h domid
