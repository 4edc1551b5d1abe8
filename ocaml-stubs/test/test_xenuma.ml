(* Unit tests of the Xenuma bindings against a fake libxenctrl
   (libxenuma/tests/fake_xenctrl.c): run as "test_xenuma.exe stock" with the
   stock fake and "test_xenuma.exe patched" with the one exporting
   XenServer's patched calls.  Prints "N passed, N failed". *)

external fake_open_handles : unit -> int = "fake_open_handles"

external fake_heap_in_use : unit -> int = "fake_heap_in_use"

external fake_last_claim_node : unit -> int = "fake_last_claim_node"

external fake_hold_physinfo : bool -> unit = "fake_hold_physinfo"

external fake_held : unit -> int = "fake_held"

external fake_used_after_close : unit -> int = "fake_used_after_close"

external fake_guest_reset : unit -> unit = "fake_guest_reset"

external fake_gfn_node : int -> int = "fake_gfn_node"

external fake_gfn_intact : int -> bool = "fake_gfn_intact"

external fake_pause_count : unit -> int = "fake_pause_count"
external fake_limit_address_space : int -> bool = "fake_limit_address_space"

external fake_live_mappings : unit -> int = "fake_live_mappings"

external fake_signal_pending : int -> unit = "fake_signal_pending"

external fake_run_pending : unit -> unit = "fake_run_pending"

external fake_signal_at_strdup : int -> unit = "fake_signal_at_strdup"

external fake_hold_map_sizes : bool -> unit = "fake_hold_map_sizes"

external fake_map_sizes_held : unit -> int = "fake_map_sizes_held"

external fake_map_size_calls : unit -> int = "fake_map_size_calls"

external fake_numainfo_no_nodes : bool -> unit = "fake_numainfo_no_nodes"

external fake_max_pages : unit -> int = "fake_max_pages"

external fake_cap_max : int -> int = "fake_cap_max"

external fake_long_ints : int -> int array = "fake_long_ints"

external fake_long_ranges : int -> Xenuma.vmemrange array = "fake_long_ranges"

external fake_long_ints_bad_at : int -> int -> int array = "fake_long_ints_bad_at"

external fake_release_physinfo_with_signal : int -> int -> unit = "fake_release_physinfo_with_signal"

let passed = ref 0

let failed = ref 0

let check name cond =
  if cond then incr passed
  else (
    incr failed ;
    Printf.eprintf "FAIL %s\n%!" name
  )

(* The exception raised by f, if it is Xenuma.Error. *)
let raised f =
  match f () with
  | _ -> None
  | exception Xenuma.Error (e, ctx) -> Some (e, ctx)

let contains s sub =
  let n = String.length sub in
  let rec go i = i + n <= String.length s && (String.sub s i n = sub || go (i + 1)) in
  go 0

let failing spec f =
  Unix.putenv "FAKE_XC_FAIL" spec ;
  Fun.protect ~finally:(fun () -> Unix.putenv "FAKE_XC_FAIL" "") f

(* Does f () hold in a child process?  For a check whose failure may be a
   crash (a stub handing OCaml a malformed value): false then, not the end of
   the run.  The child leaves by _exit, flushing nothing of the parent's. *)
let in_child f =
  match Unix.fork () with
  | 0 -> Unix._exit (match f () with true -> 0 | false | (exception _) -> 1)
  | pid -> (match snd (Unix.waitpid [] pid) with Unix.WEXITED 0 -> true | _ -> false)

(* f raises Error (EINVAL, _), as every argument out of its range must. *)
let refused name f = check name (match raised f with Some (Unix.EINVAL, _) -> true | _ -> false)

(* A batch record path, in a directory of this run's own. *)
let record_dir =
  lazy
    (let d = Filename.concat (Filename.get_temp_dir_name ()) (Printf.sprintf "xenuma-test-%d" (Unix.getpid ())) in
     Unix.mkdir d 0o700 ; d)

let record () = Filename.concat (Lazy.force record_dir) "move-1.batch"

(* f raises Invalid_argument naming [what], as an array too long for libxenuma's
   uint32_t counts must (xenuma.mli); the arrays are fakes outside the heap, their
   length only in their header *)
let too_long entries what f =
  check
    (Printf.sprintf "%s entries in %s: Invalid_argument naming it" entries what)
    (match f () with
    | _ -> false
    | exception Invalid_argument msg -> contains msg what
    | exception _ -> false)

let test_queries h =
  let t = Xenuma.topology h in
  check "distances" (t.distances = [|[|10; 20|]; [|20; 10|]|]) ;
  check "cpu_to_node" (t.cpu_to_node = [|0; 0; 1; 1|]) ;
  check "node_cores" (t.node_cores = [|2; 2|]) ;
  check "node_cpus" (t.node_cpus = [|[0; 1]; [2; 3]|]) ;
  check "memory" (t.memory.(0).size = Int64.shift_left 262144L 12 && t.memory.(1).claimed = 0L) ;
  check "free" (t.memory.(0).free > t.memory.(1).free) ;
  Unix.putenv "FAKE_XC_OFFLINE_NODE" "1" ;
  let offline = Xenuma.node_memory h in
  Unix.putenv "FAKE_XC_OFFLINE_NODE" "" ;
  check "an offline node has no memory (not XEN_INVALID_MEM_SZ as bytes)"
    (offline.(1).size = 0L && offline.(1).free = 0L && offline.(0).size > 0L) ;
  (* Xen always reports node 0; an answer of no node is an error, not arrays
     whose one entry is no (size, free) pair at all *)
  let no_node f =
    in_child (fun () ->
        fake_numainfo_no_nodes true ;
        match raised f with Some (Unix.EIO, ctx) -> contains ctx "no NUMA node" | _ -> false)
  in
  check "a host reporting no node: node_memory raises EIO" (no_node (fun () -> Xenuma.node_memory h)) ;
  check "a host reporting no node: topology raises EIO" (no_node (fun () -> Xenuma.topology h)) ;
  (* CPUs 1 and 3 parked (smt=0): cputopoinfo gives CPU 1 its node and lists
     no CPU 3; physinfo counts 2 online; Pool-0 holds CPUs 0 and 2 *)
  let with_env vars f =
    List.iter (fun (k, v) -> Unix.putenv k v) vars ;
    Fun.protect ~finally:(fun () -> List.iter (fun (k, _) -> Unix.putenv k "") vars) f
  in
  let parked_as_offline what vars =
    let t = with_env vars (fun () -> Xenuma.topology h) in
    check (what ^ ": cpu_to_node") (t.cpu_to_node = [|0; -1; 1|]) ;
    check (what ^ ": node_cpus") (t.node_cpus = [|[0]; [2]|]) ;
    check (what ^ ": node_cores") (t.node_cores = [|1; 1|])
  in
  parked_as_offline "parked CPUs (smt=0) are offline" [("FAKE_XC_PARKED_CPUS", "2")] ;
  parked_as_offline "parked CPUs, CPU 0 in no pool (free): still online"
    [("FAKE_XC_PARKED_CPUS", "2"); ("FAKE_XC_POOLLESS_CPU", "0")] ;
  (* node_cores is what xenopsd's NUMA.make ~node_cores and the Python adapter's
     cores_per_node mean: physical cores, a core's two threads counted once *)
  check "node_cores: physical cores, not CPUs (SMT: CPUs 0 and 1 one core, 2 and 3 another)"
    (with_env [("FAKE_XC_SMT", "1")] (fun () -> (Xenuma.topology h).node_cores) = [|1; 1|]) ;
  check "node_cores: SMT with the second threads parked (smt=0): still one core per node"
    (with_env [("FAKE_XC_SMT", "1"); ("FAKE_XC_PARKED_CPUS", "2")] (fun () -> (Xenuma.topology h).node_cores)
    = [|1; 1|]) ;
  check "online_cpus: every pool's" (Xenuma.online_cpus h = [0; 1; 2; 3]) ;
  check "online_cpus: a free CPU is online"
    (with_env [("FAKE_XC_POOLLESS_CPU", "0")] (fun () -> Xenuma.online_cpus h) = [0; 1; 2; 3]) ;
  check "online_cpus: parked CPUs are not"
    (with_env [("FAKE_XC_PARKED_CPUS", "2")] (fun () -> Xenuma.online_cpus h) = [0; 2]) ;
  check "no parked CPU: topology reads no pool (the free-CPU read failing is not seen)"
    (failing "xc_cpupool_freeinfo=EPERM" (fun () -> (Xenuma.topology h).cpu_to_node) = [|0; 0; 1; 1|]) ;
  check "parked CPUs and the free-CPU read failing: raised, not a guess"
    (match
       with_env [("FAKE_XC_PARKED_CPUS", "2")] (fun () ->
           failing "xc_cpupool_freeinfo=EPERM" (fun () -> raised (fun () -> Xenuma.topology h)))
     with
    | Some (Unix.EPERM, ctx) -> contains ctx "xn_cpupool_free_cpus"
    | _ -> false) ;
  let p = Xenuma.physinfo h in
  check "physinfo" (p.nr_cpus = 4 && p.nr_nodes = 2 && p.sched_id = 6) ;
  let doms = Xenuma.domains h in
  check "domains" (Array.length doms = 2 && Xenuma.is_hvm doms.(1) && not (Xenuma.is_hvm doms.(0))) ;
  check "pvh" (Xenuma.is_pvh doms.(1) && not (Xenuma.is_pvh doms.(0))) ;
  check "uuid" (Xenuma.uuid_string doms.(1) = "00000000-0000-0000-0000-000000000001") ;
  (* a domain without vCPUs (getdomaininfo's XEN_INVALID_MAX_VCPU_ID, ~0U): no vCPU id,
     as the Python adapter reads it (no vCPUs), not vCPU 4294967295 *)
  check "domains: a domain with no vCPU has max_vcpu_id -1"
    (let d = with_env [("FAKE_XC_NO_VCPUS", "1")] (fun () -> (Xenuma.domains h).(1)) in
     d.max_vcpu_id = -1 && d.online_vcpus = 0) ;
  let v = Xenuma.vcpu_info h ~domid:1 ~vcpu:1 in
  check "vcpu cpu_time" (v.cpu_time_ns = 3_000_000_000L && v.cpu = 3 && v.online) ;
  let soft = [|false; false; true; true|] in
  Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~soft () ;
  let hard, soft' = Xenuma.vcpu_affinity h ~domid:1 ~vcpu:0 in
  check "soft affinity round trip" (Array.sub soft' 0 4 = soft && Array.length hard = 8) ;
  let beyond = Array.make 64 false in
  beyond.(40) <- true ;
  check "CPU beyond the host"
    (match raised (fun () -> Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~hard:beyond ()) with
    | Some (Unix.EINVAL, _) -> true
    | _ -> false) ;
  Xenuma.set_node_affinity h ~domid:1 [|false; true|] ;
  check "node affinity" (Array.sub (Xenuma.node_affinity h ~domid:1) 0 2 = [|false; true|]) ;
  check "no such domain"
    (match raised (fun () -> Xenuma.vcpu_info h ~domid:7 ~vcpu:0) with
    | Some (Unix.ESRCH, ctx) -> contains ctx "xn_vcpu_info"
    | _ -> false) ;
  Xenuma.pause h ~domid:1 ;
  check "paused" (Xenuma.is_paused (Xenuma.domains h).(1)) ;
  Xenuma.unpause h ~domid:1 ;
  check "unpause twice is refused, as Xen does"
    (match raised (fun () -> Xenuma.unpause h ~domid:1) with Some (Unix.EINVAL, _) -> true | _ -> false) ;
  (* what xenuma.mli says of a domain the host does not have (domain 5 here) *)
  let gone name f =
    check (name ^ ": no such domain is ESRCH") (match raised f with Some (Unix.ESRCH, _) -> true | _ -> false)
  in
  gone "pause" (fun () -> Xenuma.pause h ~domid:5) ;
  gone "unpause" (fun () -> Xenuma.unpause h ~domid:5) ;
  gone "node_affinity" (fun () -> ignore (Xenuma.node_affinity h ~domid:5)) ;
  gone "vcpu_affinity" (fun () -> ignore (Xenuma.vcpu_affinity h ~domid:5 ~vcpu:0))

(* The CPU and node map sizes come from libxc's xc_get_max_cpus and
   xc_get_max_nodes, which ask Xen (physinfo) at their first call and keep the
   answer in a static of their own, unsynchronised.  Run first, before any
   other call needs a size: the first caller must release the runtime lock over
   that hypercall as every other call does (a thread held there must not stop
   the others), and a second thread asking meanwhile must wait for that answer,
   not ask libxc at the same time. *)
let test_map_sizes h =
  let first what ask =
    let calls = fake_map_size_calls () and answers = ref 0 in
    let caller () = ask () ; incr answers in
    fake_hold_map_sizes true ;
    let t1 = Thread.create caller () in
    let waited = ref 0 in
    while fake_map_sizes_held () = 0 && !waited < 3000 do Thread.delay 0.001 ; incr waited done ;
    check ("map sizes: the first " ^ what ^ " asks Xen with the runtime lock released")
      (fake_map_sizes_held () = 1) ;
    let t2 = Thread.create caller () in
    Thread.delay 0.05 ;
    fake_hold_map_sizes false ;
    Thread.join t1 ;
    Thread.join t2 ;
    check ("map sizes: ... a second " ^ what ^ " meanwhile waits for that answer (libxc asked once)")
      (!answers = 2 && fake_map_size_calls () - calls = 1)
  in
  first "vcpu_affinity" (fun () -> ignore (Xenuma.vcpu_affinity h ~domid:1 ~vcpu:0)) ;
  first "node_affinity" (fun () -> ignore (Xenuma.node_affinity h ~domid:1)) ;
  let calls = fake_map_size_calls () in
  ignore (Xenuma.vcpu_affinity h ~domid:1 ~vcpu:1) ;
  ignore (Xenuma.node_affinity h ~domid:1) ;
  check "map sizes: kept, not asked again" (fake_map_size_calls () = calls)

let test_dump () =
  let text =
    "(XEN) noise\n(XEN) Memory location of each domain:\n(XEN) d0 (total: 300):\n\
     (XEN)     Node 0: 100\n(XEN)     Node 1: 200\n(XEN) d1 (total: 30):\n\
     (XEN)     Node 0: 10\n(XEN)     Node 1: 20\n"
  in
  check "dump parse" (Xenuma.node_pages_of_dump text ~domid:1 ~nr_nodes:2 = ([|10L; 20L|], 30L)) ;
  check "dump: domain absent"
    (match raised (fun () -> Xenuma.node_pages_of_dump text ~domid:5 ~nr_nodes:2) with
    | Some (Unix.ENOENT, _) -> true
    | _ -> false)

let test_errors h =
  (* the errno of a move's result reads as Error's do, beyond the common few *)
  check "result errno 14 is EFAULT, 0 none, 13 EACCES"
    (Xenuma.error_of_errno 14 = Some Unix.EFAULT && Xenuma.error_of_errno 0 = None
    && Xenuma.error_of_errno 13 = Some Unix.EACCES) ;
  (* EPERM: not privileged *)
  check "EPERM at open"
    (failing "xc_interface_open=EPERM" (fun () ->
         match raised Xenuma.open_ with Some (Unix.EPERM, ctx) -> contains ctx "xn_open" | _ -> false)) ;
  check "EPERM on pause"
    (failing "xc_domain_pause=EPERM" (fun () ->
         match raised (fun () -> Xenuma.pause h ~domid:1) with Some (Unix.EPERM, _) -> true | _ -> false)) ;
  (* ENOMEM *)
  check "ENOMEM in numainfo"
    (failing "xc_numainfo=ENOMEM" (fun () ->
         match raised (fun () -> Xenuma.topology h) with
         | Some (Unix.ENOMEM, ctx) -> contains ctx "xn_numainfo"
         | _ -> false)) ;
  check "ENOMEM from a host-wide claim is raised, not wrapped"
    (failing "xc_domain_claim_pages=ENOMEM" (fun () ->
         match raised (fun () -> Xenuma.claim h ~domid:1 100L) with Some (Unix.ENOMEM, _) -> true | _ -> false)) ;
  check "ENOMEM during a scan"
    (failing "xc_get_pfn_type_batch=ENOMEM" (fun () ->
         match raised (fun () -> Xenuma.scan h ~domid:1) with Some (Unix.ENOMEM, _) -> true | _ -> false)) ;
  (* a highest gfn past what Xen lets the guest address: 2^64 - 1 wrapped the count of
     gfns to 0 (an empty map), 2^40 asked for a TiB *)
  List.iter
    (fun top ->
      Unix.putenv "FAKE_XC_MAX_GPFN" top ;
      check ("scan: a highest gfn of " ^ top ^ " is refused, E2BIG")
        (Fun.protect ~finally:(fun () -> Unix.putenv "FAKE_XC_MAX_GPFN" "") (fun () ->
             match raised (fun () -> Xenuma.scan h ~domid:1) with
             | Some (Unix.E2BIG, ctx) -> contains ctx "2^36"
             | _ -> false)))
    ["18446744073709551615"; "1099511627776"] ;
  check "PV guest not movable"
    (match raised (fun () -> Xenuma.movable_check h ~domid:0) with
    | Some (Unix.EPROTOTYPE, ctx) -> contains ctx "PV guest"
    | _ -> false) ;
  (* Xen keeps one claim per domain: a second, while the first is held, is EINVAL;
     the error must say so (cancel with a claim of 0), not blame the claim's size *)
  let held = Unix.putenv "FAKE_XC_CLAIM_HELD" "4096" ; raised (fun () -> Xenuma.claim h ~domid:1 8192L) in
  Unix.putenv "FAKE_XC_CLAIM_HELD" "" ;
  check "claim: a second claim while one is held says so"
    (match held with Some (Unix.EINVAL, ctx) -> contains ctx "holds a claim" | _ -> false) ;
  check "claim: ... cancelling it (a claim of 0) is taken"
    (Unix.putenv "FAKE_XC_CLAIM_HELD" "4096" ;
     Fun.protect ~finally:(fun () -> Unix.putenv "FAKE_XC_CLAIM_HELD" "") (fun () -> Xenuma.claim h ~domid:1 0L = Ok ())) ;
  (* Xen's claim answers EINVAL for a domain that does not exist: said as ESRCH, as
     every other call (and the Python adapter's claim) says it, not as a bad node *)
  check "claim: no such domain is ESRCH (host-wide)"
    (match raised (fun () -> Xenuma.claim h ~domid:7 100L) with
    | Some (Unix.ESRCH, ctx) -> contains ctx "no such domain"
    | _ -> false) ;
  (* xenopsd logs what a placement raised with Printexc.to_string (log_reraise), and
     puts that text in the VM start's failure: the errno must read as one, not as
     Unix.error's constructor index ("Xenuma.Error(12, ...)" for EINVAL, errno 22) *)
  let shown = match raised (fun () -> Xenuma.claim h ~domid:7 100L) with
    | Some (e, ctx) -> Printexc.to_string (Xenuma.Error (e, ctx))
    | None -> ""
  in
  check "Printexc.to_string names the errno and says what failed"
    (contains shown "errno 3" && contains shown (Unix.error_message Unix.ESRCH) && contains shown "no such domain") ;
  check "Printexc.to_string: an errno Unix has no name for keeps its number"
    (contains (Printexc.to_string (Xenuma.Error (Unix.EUNKNOWNERR 121, "x"))) "121") ;
  check "closed handle"
    (let h' = Xenuma.open_ () in
     Xenuma.close h' ;
     Xenuma.close h' ;
     match raised (fun () -> Xenuma.physinfo h') with Some (Unix.EBADF, _) -> true | _ -> false) ;
  check "no record, not busy" (not (Xenuma.record_busy "/nonexistent/xenuma.batch")) ;
  check "no record, nothing to recover"
    (Xenuma.recover h ~record:"/nonexistent/xenuma.batch" = Xenuma.Nothing_to_do)

(* vNUMA: set a layout through set_vnuma, read it back through vnuma (whose
   stub answers Xen's ENOBUFS sizing itself), compare. *)
let test_vnuma h =
  check "vnuma: none before any layout" (Xenuma.vnuma h ~domid:1 = None) ;
  let mib n = Int64.shift_left (Int64.of_int n) 20 in
  (* vnode 1 has two ranges, around a hole, as around the MMIO hole *)
  let ranges : Xenuma.vmemrange array =
    [| {start= 0L; stop= mib 256; vnode= 0}
     ; {start= mib 256; stop= mib 512; vnode= 1}
     ; {start= mib 4096; stop= mib 4352; vnode= 1} |]
  in
  (* asymmetric distances and vCPUs crossed, so a transposition or swap shows *)
  let vdistance = [|[|10; 20|]; [|30; 10|]|] and vcpu_to_vnode = [|1; 0|] in
  Xenuma.set_vnuma h ~domid:1 ~ranges ~vdistance ~vcpu_to_vnode ~vnode_to_pnode:[|1; 0|] ;
  ( match Xenuma.vnuma h ~domid:1 with
  | Some l ->
      check "vnuma: ranges read back" (l.ranges = ranges) ;
      check "vnuma: distances read back" (l.vdistance = vdistance) ;
      check "vnuma: vcpu_to_vnode read back" (l.vcpu_to_vnode = vcpu_to_vnode)
  | None -> check "vnuma: the layout set is there" false ) ;
  (* a smaller layout replaces it, and is read at its own size *)
  let one : Xenuma.vmemrange array = [|{start= 0L; stop= mib 512; vnode= 0}|] in
  Xenuma.set_vnuma h ~domid:1 ~ranges:one ~vdistance:[|[|10|]|] ~vcpu_to_vnode:[|0; 0|] ~vnode_to_pnode:[|0|] ;
  check "vnuma: the replacing layout read back"
    (Xenuma.vnuma h ~domid:1 = Some {Xenuma.ranges= one; vdistance= [|[|10|]|]; vcpu_to_vnode= [|0; 0|]}) ;
  check "vnuma: inconsistent layout refused before Xen"
    (match
       raised (fun () ->
           Xenuma.set_vnuma h ~domid:1 ~ranges ~vdistance ~vcpu_to_vnode:[|0; 0|] ~vnode_to_pnode:[|1; 0|])
     with
    | Some (Unix.EINVAL, ctx) -> contains ctx "inconsistent"
    | _ -> false) ;
  check "vnuma: the refused layout left the old one"
    (match Xenuma.vnuma h ~domid:1 with Some l -> Array.length l.vdistance = 1 | None -> false) ;
  (* 2 vnodes, 4 distances in all, but rows of 3 and 1: not a matrix to reshape *)
  check "vnuma: a ragged vdistance is refused before Xen"
    (match
       raised (fun () ->
           Xenuma.set_vnuma h ~domid:1 ~ranges ~vdistance:[|[|10; 20; 20|]; [|10|]|] ~vcpu_to_vnode
             ~vnode_to_pnode:[|1; 0|])
     with
    | Some (Unix.EINVAL, ctx) -> contains ctx "inconsistent"
    | _ -> false) ;
  refused "vnuma: a pnode of 2^32 is refused, not taken for pnode 0" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges ~vdistance ~vcpu_to_vnode ~vnode_to_pnode:[|1 lsl 32; 0|]) ;
  refused "vnuma: a negative vnode in a range" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges:[|{(ranges.(0)) with vnode= -1}|] ~vdistance:[|[|10|]|]
        ~vcpu_to_vnode:[|0; 0|] ~vnode_to_pnode:[|0|]) ;
  (* a count libxenuma's uint32_t cannot hold is refused naming its argument,
     not cut to its low 32 bits (2^32 + 1 ranges taken for 1) *)
  let too_long entries what f = too_long ("vnuma: " ^ entries) what f in
  let beyond = (1 lsl 32) + 1 in
  too_long "2^32 + 1" "ranges" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges:(fake_long_ranges beyond) ~vdistance:[|[|10|]|]
        ~vcpu_to_vnode:[|0; 0|] ~vnode_to_pnode:[|0|]) ;
  too_long "2^32" "ranges" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges:(fake_long_ranges (1 lsl 32)) ~vdistance:[|[|10|]|]
        ~vcpu_to_vnode:[|0; 0|] ~vnode_to_pnode:[|0|]) ;
  too_long "2^32 + 2" "vcpu_to_vnode" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges:one ~vdistance:[|[|10|]|] ~vcpu_to_vnode:(fake_long_ints (beyond + 1))
        ~vnode_to_pnode:[|0|]) ;
  too_long "2^32 + 1" "vnode_to_pnode" (fun () ->
      Xenuma.set_vnuma h ~domid:1 ~ranges:one ~vdistance:[|[|10|]|] ~vcpu_to_vnode:[|0; 0|]
        ~vnode_to_pnode:(fake_long_ints beyond)) ;
  (* Review 5: 2^32 - 1 entries pass count_arg (only "more than" U32_MAX is refused),
     and the stub sizes vcpu_to_vnode's copy as calloc(nr_vcpus + 1): a uint32_t sum
     that wraps to 0, so the entries are written past a buffer of none (the heap
     overrun count_arg was added to prevent).  The fake's entry 400 is -1, so a stub
     checking them stops there: Invalid_argument or Error, never a crash.  Run in a
     child: a corrupted heap aborts it. *)
  check "vnuma: 2^32 - 1 entries in vcpu_to_vnode: refused without writing past a buffer"
    (match Unix.fork () with
    | 0 ->
        let code =
          match
            Xenuma.set_vnuma h ~domid:1 ~ranges:one ~vdistance:[|[|10|]|]
              ~vcpu_to_vnode:(fake_long_ints_bad_at ((1 lsl 32) - 1) 400) ~vnode_to_pnode:[|0|]
          with
          | () -> 1
          | exception Invalid_argument _ -> 0
          | exception Xenuma.Error _ -> 0
          | exception _ -> 1
        in
        (* the heap after the call: a malloc/free round that glibc checks *)
        let b = Bytes.create 100_000 in
        ignore (Bytes.length b) ;
        Gc.compact () ;
        Unix._exit code
    | pid -> (
        match Unix.waitpid [] pid with
        | _, Unix.WEXITED 0 -> true
        | _, Unix.WEXITED c -> Printf.printf "  (child exited %d)\n%!" c ; false
        | _, Unix.WSIGNALED s -> Printf.printf "  (child killed by signal %d)\n%!" s ; false
        | _, Unix.WSTOPPED _ -> false)) ;
  check "vnuma: none of the refused layouts reached Xen"
    (match Xenuma.vnuma h ~domid:1 with Some l -> l.vdistance = [|[|10|]|] | None -> false) ;
  check "vnuma: no such domain"
    (match raised (fun () -> Xenuma.vnuma h ~domid:9) with
    | Some (Unix.ESRCH, ctx) -> contains ctx "xn_domain_getvnuma"
    | _ -> false) ;
  check "vnuma: EPERM raised"
    (failing "xc_domain_getvnuma=EPERM" (fun () ->
         match raised (fun () -> Xenuma.vnuma h ~domid:1) with Some (Unix.EPERM, _) -> true | _ -> false)) ;
  check "vnuma: a layout that keeps changing gives up with EAGAIN"
    (failing "xc_domain_getvnuma=EAGAIN" (fun () ->
         match raised (fun () -> Xenuma.vnuma h ~domid:1) with
         | Some (Unix.EAGAIN, ctx) -> contains ctx "kept changing"
         | _ -> false))

let test_stock h =
  let f = Xenuma.features h in
  check "stock features" (f.node_pages = `Fallback && f.node_claims = `Unavailable && f.claims = `Native) ;
  (* ENOSYS: a caller's decision, so a result *)
  check "per-node claim: ENOSYS as a result"
    (match Xenuma.claim h ~domid:1 ~node:1 4096L with Error (Unix.ENOSYS, _) -> true | _ -> false) ;
  check "node pages: ENOSYS as a result"
    (match Xenuma.node_pages h ~domid:1 ~nr_nodes:2 with Error (Unix.ENOSYS, _) -> true | _ -> false) ;
  check "host-wide claim" (Xenuma.claim h ~domid:1 4096L = Ok ())

let test_patched h =
  let f = Xenuma.features h in
  check "patched features" (f.node_pages = `Native && f.node_claims = `Native) ;
  check "per-node claim reaches the patched call"
    (Xenuma.claim h ~domid:1 ~node:1 4096L = Ok () && fake_last_claim_node () = 1) ;
  check "node pages from the patched call"
    (Xenuma.node_pages h ~domid:1 ~nr_nodes:2 = Ok [|1001L; 2001L|]) ;
  check "EOPNOTSUPP from the patched call: a result, said as missing (ENOSYS)"
    (failing "xc_domain_numa_get_node_pages=EOPNOTSUPP" (fun () ->
         match Xenuma.node_pages h ~domid:1 ~nr_nodes:2 with Error (Unix.ENOSYS, _) -> true | _ -> false)) ;
  check "claim: no such domain is ESRCH (on a node of the host's)"
    (match raised (fun () -> Xenuma.claim h ~domid:7 ~node:1 100L) with
    | Some (Unix.ESRCH, ctx) -> contains ctx "no such domain"
    | _ -> false) ;
  check "EINVAL from Xen's per-node claim on a node of the host's is not said to be a bad node"
    (failing "xc_domain_claim_pages_node=EINVAL" (fun () ->
         match raised (fun () -> Xenuma.claim h ~domid:1 ~node:1 1L) with
         | Some (Unix.EINVAL, ctx) -> not (contains ctx "not a node") && contains ctx "refused"
         | _ -> false)) ;
  check "EPERM from the patched claim is raised"
    (failing "xc_domain_claim_pages_node=EPERM" (fun () ->
         match raised (fun () -> Xenuma.claim h ~domid:1 ~node:0 1L) with
         | Some (Unix.EPERM, _) -> true
         | _ -> false))

(* Every int argument is checked, never cast: a cast wraps into another domain,
   vCPU, node or a time of weeks. *)
let test_ranges h =
  refused "domid 65537 is refused, not taken for domain 1" (fun () -> Xenuma.vcpu_info h ~domid:65537 ~vcpu:0) ;
  refused "domid -1" (fun () -> Xenuma.vcpu_info h ~domid:(-1) ~vcpu:0) ;
  refused "domid 0x7FF0 (DOMID_SELF)" (fun () -> Xenuma.vcpu_info h ~domid:0x7FF0 ~vcpu:0) ;
  refused "pause: domid 65537" (fun () -> Xenuma.pause h ~domid:65537) ;
  check "pause: domain 1 was not paused for domid 65537" (fake_pause_count () = 0) ;
  refused "vcpu 2^32 is refused, not taken for vCPU 0" (fun () -> Xenuma.vcpu_info h ~domid:1 ~vcpu:(1 lsl 32)) ;
  refused "vcpu -1" (fun () -> Xenuma.vcpu_affinity h ~domid:1 ~vcpu:(-1)) ;
  refused "node_affinity: domid 65537" (fun () -> Xenuma.node_affinity h ~domid:65537) ;
  refused "claim: node -2 is refused, not a host-wide claim" (fun () -> Xenuma.claim h ~domid:1 ~node:(-2) 1L) ;
  refused "claim: node 2^32 + 1 is refused, not node 1" (fun () ->
      Xenuma.claim h ~domid:1 ~node:((1 lsl 32) + 1) 1L) ;
  refused "claim: node 2^32 - 1 (libxenuma's host-wide) is refused" (fun () ->
      Xenuma.claim h ~domid:1 ~node:0xFFFF_FFFF 1L) ;
  refused "claim: node 2, which the host lacks" (fun () -> Xenuma.claim h ~domid:1 ~node:2 1L) ;
  refused "claim: a negative number of pages" (fun () -> Xenuma.claim h ~domid:1 (-1L)) ;
  refused "capture_dump: timeout -1 is refused, not 49 days" (fun () -> Xenuma.capture_dump ~timeout_ms:(-1) h) ;
  refused "capture_dump: timeout past 10 minutes" (fun () -> Xenuma.capture_dump ~timeout_ms:600_001 h) ;
  refused "node_pages: nr_nodes -1" (fun () -> Xenuma.node_pages h ~domid:1 ~nr_nodes:(-1)) ;
  refused "node_pages_of_dump: domid 65537" (fun () -> Xenuma.node_pages_of_dump "" ~domid:65537 ~nr_nodes:2) ;
  (* affinity maps are whole bytes: 8 entries on this 4-CPU, 2-node host *)
  let one n = Array.init 8 (fun i -> i = n) in
  refused "set_vcpu_affinity: CPU 5 of a 4-CPU host (its map has room for 8)" (fun () ->
      Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~soft:(one 5) ()) ;
  Unix.putenv "FAKE_XC_HOTPLUG_CPUS" "4" ;
  check "set_vcpu_affinity: CPU 5 of a host with 4 hotplug CPUs is the host's"
    (raised (fun () -> Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~soft:(one 5) ()) = None) ;
  Unix.putenv "FAKE_XC_HOTPLUG_CPUS" "" ;
  Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~soft:(Array.make 4 true) () ;
  refused "set_node_affinity: node 2 of a 2-node host (its map has room for 8)" (fun () ->
      Xenuma.set_node_affinity h ~domid:1 (one 2)) ;
  (* Xen 4.17 says max_node_id 63 (MAX_NUMNODES - 1) whatever the host has *)
  refused "set_node_affinity: node 5 of a 2-node host, below physinfo's 63" (fun () ->
      Xenuma.set_node_affinity h ~domid:1 (Array.init 64 (fun i -> i = 5))) ;
  refused "claim: node 5 of a 2-node host, below physinfo's 63" (fun () -> Xenuma.claim h ~domid:1 ~node:5 1L) ;
  check "set_node_affinity: the refused map was not set"
    (Array.sub (Xenuma.node_affinity h ~domid:1) 0 3 = [|false; true; false|])

let test_capture_dump h =
  let dump = Xenuma.capture_dump h in
  check "capture_dump: debug key 'u''s output, parsed"
    (Xenuma.node_pages_of_dump dump ~domid:1 ~nr_nodes:2 = ([|1001L; 2001L|], 3002L)) ;
  (* A dump larger than Xen's console ring (conring_size, 16 KiB by default: a few
     dozen domains on an 8-node host) loses its head before it is read: what is
     left has no header, and node_pages_of_dump would say of every domain, one
     that exists included, that it is not in the dump (ENOENT).  The capture says
     it has no dump: EAGAIN, as for a key that printed nothing. *)
  Unix.putenv "FAKE_XC_CONSOLE" "overrun" ;
  let lost_head = raised (fun () -> Xenuma.capture_dump ~timeout_ms:100 h) in
  Unix.putenv "FAKE_XC_CONSOLE" "" ;
  check "capture_dump: a dump whose head the console ring lost is EAGAIN, not a dump without the domain"
    (match lost_head with Some (Unix.EAGAIN, ctx) -> contains ctx "conring_size" | _ -> false)

let ram_count classes =
  let n = ref 0 in
  Bytes.iter (fun c -> if Xenuma.gfn_class_of_char c = Xenuma.Ram then incr n) classes ;
  !n

let all_on node gfns = Array.for_all (fun g -> fake_gfn_node g = node) gfns

let intact gfns = Array.for_all fake_gfn_intact gfns

(* After every batch: the pause given back, no mapping left, the record gone. *)
let settled record =
  fake_pause_count () = 0 && fake_live_mappings () = 0 && not (Sys.file_exists record)

(* Xen's DMA zone, read as the Python adapter reads it: the fake has node 0's memory
   below 2^26 (64 MiB) free, none elsewhere, and a XenServer command line. *)
let test_dma_zone h =
  let low = Int64.shift_left 16384L 12 in
  check "node_free_below: node 0's free memory below 2^26" (Xenuma.node_free_below h ~node:0 ~width:26 = low) ;
  check "node_free_below: the same below a wider width" (Xenuma.node_free_below h ~node:0 ~width:32 = low) ;
  check "node_free_below: none below a narrower one" (Xenuma.node_free_below h ~node:0 ~width:25 = 0L) ;
  check "node_free_below: none on node 1" (Xenuma.node_free_below h ~node:1 ~width:32 = 0L) ;
  refused "node_free_below: width 0 (every zone, to Xen)" (fun () -> Xenuma.node_free_below h ~node:0 ~width:0) ;
  refused "node_free_below: width 65" (fun () -> Xenuma.node_free_below h ~node:0 ~width:65) ;
  refused "node_free_below: width 2^32 + 26 is refused, not width 26" (fun () ->
      Xenuma.node_free_below h ~node:0 ~width:((1 lsl 32) + 26)) ;
  refused "node_free_below: node 2, which the host lacks" (fun () -> Xenuma.node_free_below h ~node:2 ~width:26) ;
  refused "node_free_below: node -1" (fun () -> Xenuma.node_free_below h ~node:(-1) ~width:26) ;
  check "node_free_below: a refused read is raised"
    (match failing "xc_availheap=EPERM" (fun () -> raised (fun () -> Xenuma.node_free_below h ~node:0 ~width:26)) with
    | Some (Unix.EPERM, ctx) -> contains ctx "xn_node_free_below"
    | _ -> false) ;
  check "xen_commandline: Xen's own" (Xenuma.xen_commandline h = "dom0_mem=2048M,max:2048M watchdog ucode=scan") ;
  let with_line line f =
    Unix.putenv "FAKE_XC_CMDLINE" line ;
    Fun.protect ~finally:(fun () -> Unix.putenv "FAKE_XC_CMDLINE" "") f
  in
  check "xen_commandline: dma_bits= on it"
    (with_line "console=com1 dma_bits=30" (fun () -> Xenuma.xen_commandline h) = "console=com1 dma_bits=30") ;
  check "xen_commandline: at most 1023 bytes (xen_commandline_t)"
    (with_line (String.make 2000 'x') (fun () -> Xenuma.xen_commandline h) = String.make 1023 'x') ;
  check "xen_commandline: refused (an XSM policy) is raised"
    (match failing "xc_version=EACCES" (fun () -> raised (fun () -> Xenuma.xen_commandline h)) with
    | Some (Unix.EACCES, ctx) -> contains ctx "xn_xen_commandline"
    | _ -> false)

(* Neither map: libxenuma does nothing and answers 0, so the call looked done. *)
let test_affinity_needs_a_map h =
  check "set_vcpu_affinity: neither map is refused, naming both"
    (match Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 () with
    | () -> false
    | exception Invalid_argument msg -> contains msg "?hard" && contains msg "?soft"
    | exception _ -> false) ;
  let hard, soft = Xenuma.vcpu_affinity h ~domid:1 ~vcpu:0 in
  Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~soft () ;
  Xenuma.set_vcpu_affinity h ~domid:1 ~vcpu:0 ~hard () ;
  check "set_vcpu_affinity: one map is enough" true

(* Moves over the fake's guest memory (fake_xenforeignmemory.c maps its frames):
   frames 0..4095 are node 0's, 4096..8191 node 1's; the guest starts on node 0. *)
let test_move h =
  let record = record () in
  fake_guest_reset () ;
  let classes, _ = Xenuma.scan h ~domid:1 in
  check "scan: the guest's 2048 RAM gfns, its magic pages"
    (ram_count classes = 2048 && Xenuma.gfn_class_of_char (Bytes.get classes 32000) = Xenuma.Magic) ;
  (* a highest gfn far past the RAM (a high MMIO mapping): the map is as long as the scan
     classified (to the magic pages), not a byte per gfn to 2^36 (64 GiB, under a 1 GiB limit) *)
  Unix.putenv "FAKE_XC_MAX_GPFN" "68719476735" ;
  check "scan: a highest gfn of 2^36 - 1 sizes no map by it"
    (Fun.protect
       ~finally:(fun () -> Unix.putenv "FAKE_XC_MAX_GPFN" "" ; ignore (fake_limit_address_space 0))
       (fun () ->
         fake_limit_address_space 1024
         &&
         match Xenuma.scan h ~domid:1 with
         | far, _ -> Bytes.length far = 32002 && ram_count far = 2048 && Bytes.equal far (Bytes.sub classes 0 32002)
         | exception Xenuma.Error _ -> false)) ;
  let gfns = Array.init 100 (fun i -> 100 + i) in
  check "move: the pages start on node 0" (all_on 0 gfns) ;
  let r = Xenuma.move ~record h ~domid:1 ~gfns ~node:1 in
  check "move: every page moved, none lost"
    (r.moved = 100L && r.lost = 0L && r.error = None && r.stage = Xenuma.Done) ;
  check "move: the pages are on node 1 now" (all_on 1 gfns && fake_gfn_node 99 = 0) ;
  check "move: their contents kept" (intact gfns) ;
  check "move: unpaused, nothing mapped, the record gone" (settled record) ;
  let r = Xenuma.move ~verify_chunk:0 ~record h ~domid:1 ~gfns ~node:0 in
  check "move: back to node 0, the whole batch between checks (verify_chunk 0)"
    (r.moved = 100L && all_on 0 gfns && intact gfns && settled record) ;
  (* refused before any pause: nothing moves *)
  let gfns = [|0; 1; 2|] in
  refused "move: node 2^32 + 1 is refused, not node 1" (fun () ->
      Xenuma.move ~record h ~domid:1 ~gfns ~node:((1 lsl 32) + 1)) ;
  refused "move: node 256" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:256) ;
  (* as set_vnuma's arrays: a length no host makes right, the caller's bug (it was Error EINVAL) *)
  too_long "move: 2^32" "gfns" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns:(fake_long_ints (1 lsl 32)) ~node:1) ;
  too_long "move: 2^32 + 1" "gfns" (fun () ->
      Xenuma.move ~record h ~domid:1 ~gfns:(fake_long_ints ((1 lsl 32) + 1)) ~node:1) ;
  refused "move: node -1" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:(-1)) ;
  refused "move: node 2, which the host lacks" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:2) ;
  refused "move: verify_chunk -1" (fun () -> Xenuma.move ~verify_chunk:(-1) ~record h ~domid:1 ~gfns ~node:1) ;
  refused "move: domid 65537 is refused, not domain 1" (fun () ->
      Xenuma.move ~record h ~domid:65537 ~gfns ~node:1) ;
  refused "move: a negative gfn" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns:[|-1; 0|] ~node:1) ;
  refused "move: gfns not ascending" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns:[|2; 1|] ~node:1) ;
  (* each EINVAL said as what it is: a gfn the guest does not have was "gfns not
     ascending, or not a node of the host's" *)
  let said name f words =
    check name
      (match raised f with Some (Unix.EINVAL, ctx) -> List.for_all (contains ctx) words | _ -> false)
  in
  said "move: gfns not ascending, said so" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns:[|2; 1|] ~node:1)
    ["not ascending"; "gfn 1 after 2"] ;
  said "move: node 2, said so" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:2) ["node 2"; "not a node"] ;
  (* a gfn the guest does not have (given back by a balloon driver since the caller's
     scan, or never there) is left out of the batch and counted with those left where
     they were; the rest moves *)
  let r = Xenuma.move ~record h ~domid:1 ~gfns:[|100; 99999; 100000|] ~node:1 in
  check "move: gfns past the guest's highest are left out, the rest moved"
    (r.moved = 1L && r.granted = 2L && r.error = None && all_on 1 [|100|] && settled record) ;
  let r = Xenuma.move ~record h ~domid:1 ~gfns:[|5000|] ~node:1 in
  check "move: a batch of a gfn in a hole moves nothing and pauses nothing"
    (r.moved = 0L && r.granted = 1L && r.error = None && settled record) ;
  let r = Xenuma.move ~record h ~domid:1 ~gfns:[|100; 5000|] ~node:0 in
  check "move: a batch with a gfn in a hole: the other moved back"
    (r.moved = 1L && r.granted = 1L && all_on 0 [|100|] && settled record) ;
  refused "move: a record path holding a NUL" (fun () ->
      Xenuma.move ~record:(record ^ "\000x") h ~domid:1 ~gfns ~node:1) ;
  check "move: nothing refused moved a page or paused the guest" (all_on 0 gfns && settled record) ;
  (* the domain named by its uuid, as the Python adapter's move names it: a domid given
     to another domain since the scan is refused (ESTALE), its pages left alone *)
  let uuid = (List.find (fun (d : Xenuma.domain) -> d.domid = 1) (Array.to_list (Xenuma.domains h))).uuid in
  let another = String.mapi (fun i c -> if i = 0 then Char.chr (Char.code c lxor 0xff) else c) uuid in
  check "move: a uuid that is no longer the domid's is refused (ESTALE), nothing moved or paused"
    (match raised (fun () -> Xenuma.move ~uuid:another ~record h ~domid:1 ~gfns ~node:1) with
     | Some (Unix.EUNKNOWNERR 116, ctx) ->
         contains ctx "no longer" && all_on 0 gfns && settled record
     | _ -> false) ;
  refused "move: a uuid not 16 bytes" (fun () -> Xenuma.move ~uuid:"abc" ~record h ~domid:1 ~gfns ~node:1) ;
  let r = Xenuma.move ~uuid ~record h ~domid:1 ~gfns ~node:1 in
  check "move: the domain's own uuid moves" (r.moved = 3L && all_on 1 gfns && intact gfns && settled record)

(* The probe pauses the guest: only ever under a record, at most a minute. *)
let test_scan_probe h =
  let record = record () in
  fake_guest_reset () ;
  let classes, _ = Xenuma.scan ~probe_ms:5 ~record h ~domid:1 in
  check "scan with a probe: the RAM, nothing changed while paused"
    (ram_count classes = 2048
    && not (Bytes.exists (fun c -> Xenuma.gfn_class_of_char c = Xenuma.Changed) classes)) ;
  check "scan with a probe: unpaused, the record gone" (settled record) ;
  check "scan: a probe without a record is refused before any pause"
    (match raised (fun () -> Xenuma.scan ~probe_ms:5 h ~domid:1) with
    | Some (Unix.EINVAL, ctx) -> contains ctx "record" && fake_pause_count () = 0
    | _ -> false) ;
  (* the record is a probe's alone: without one it is not looked at, NUL or not *)
  check "scan: no probe, a record holding a NUL is not used, nor refused"
    (match Xenuma.scan ~record:"probe\000record" h ~domid:1 with
    | classes, _ -> ram_count classes = 2048
    | exception Xenuma.Error _ -> false) ;
  check "scan: a probe's record holding a NUL is refused before any pause"
    (match raised (fun () -> Xenuma.scan ~probe_ms:5 ~record:(record ^ "\000x") h ~domid:1) with
    | Some (Unix.EINVAL, ctx) -> contains ctx "NUL" && fake_pause_count () = 0
    | _ -> false) ;
  refused "scan: probe_ms -1" (fun () -> Xenuma.scan ~probe_ms:(-1) ~record h ~domid:1) ;
  refused "scan: probe_ms 60001" (fun () -> Xenuma.scan ~probe_ms:60_001 ~record h ~domid:1) ;
  refused "scan: probe_ms 2^32 + 5 is refused, not a 5 ms probe" (fun () ->
      Xenuma.scan ~probe_ms:((1 lsl 32) + 5) ~record h ~domid:1) ;
  refused "scan: domid 65537" (fun () -> Xenuma.scan h ~domid:65537) ;
  check "scan: the refused probes paused nothing" (settled record)

(* An unpause that fails leaves the guest paused and the record kept; recover
   gives the pause back, once. *)
let test_recover h =
  let record = record () in
  fake_guest_reset () ;
  let gfns = Array.init 32 (fun i -> 100 + i) in
  let r = failing "xc_domain_unpause=ENOMEM" (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:1) in
  check "move: a failed unpause is in the result"
    (r.stage = Xenuma.Unpause && r.error = Some Unix.ENOMEM && r.lost = 0L) ;
  check "move: ... the guest still paused, the record kept for recover, no mover alive"
    (fake_pause_count () = 1 && Sys.file_exists record && not (Xenuma.record_busy record)) ;
  check "move: another batch on that record is refused until recover"
    (match raised (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:0) with
    | Some (Unix.EEXIST, _) -> true
    | _ -> false) ;
  check "recover: unpaused"
    (match Xenuma.recover h ~record with Xenuma.Unpaused r -> r.lost = 0L | _ -> false) ;
  check "recover: the pause given back, the record gone, the pages moved and intact"
    (settled record && all_on 1 gfns && intact gfns) ;
  check "recover: then nothing to do (never a second unpause)"
    (Xenuma.recover h ~record = Xenuma.Nothing_to_do && fake_pause_count () = 0) ;
  ( match failing "xc_domain_unpause=ENOMEM" (fun () -> raised (fun () -> Xenuma.scan ~probe_ms:5 ~record h ~domid:1)) with
  | Some (Unix.ENOMEM, _) ->
      check "scan: a probe whose unpause failed leaves the guest paused under its record"
        (fake_pause_count () = 1 && Sys.file_exists record) ;
      check "recover: gives the probe's pause back"
        (match Xenuma.recover h ~record with Xenuma.Unpaused _ -> settled record | _ -> false)
  | _ -> check "scan: a probe whose unpause failed raises" false ) ;
  check "recover: a record path holding a NUL is refused"
    (match raised (fun () -> Xenuma.recover h ~record:(record ^ "\000")) with
    | Some (Unix.EINVAL, _) -> true
    | _ -> false)

(* A mover killed between raising max_pages (the toolstack had capped it below the
   guest's count) and giving it back: recover sets the toolstack's value again from
   the batch record, and the result says so (max_restored), as xn_mig_recover does. *)
let test_recover_a_raise h =
  let record = record () in
  fake_guest_reset () ;
  let gfns = Array.init 512 (fun i -> 512 + i) in
  let cap = fake_cap_max 100 in
  ( match Unix.fork () with
  | 0 ->
      Unix.putenv "FAKE_XC_DIE_AFTER_RAISE" "1" ;
      (try ignore (Xenuma.move ~record h ~domid:1 ~gfns ~node:1) with _ -> ()) ;
      Unix._exit 1
  | pid -> ignore (Unix.waitpid [] pid) ) ;
  check "recover a raise: the dead mover left max_pages raised" (cap > 0 && fake_max_pages () > cap) ;
  check "recover a raise: the toolstack's max_pages set back, and said"
    (match Xenuma.recover h ~record with
    | Xenuma.Unpaused r -> r.lost = 0L && r.max_restored = Int64.of_int cap && not r.max_unknown
    | _ -> false) ;
  check "recover a raise: max_pages is the toolstack's, the guest settled"
    (fake_max_pages () = cap && settled record && intact gfns)

exception Interrupted

let handled = ref 0

(* Run f with SIGUSR1 pending, whose handler raises: it runs at f's first
   poll, inside the stub f calls.  Whether f was interrupted. *)
let interrupted f =
  match fake_signal_pending Sys.sigusr1 ; f () with _ -> false | exception Interrupted -> true

(* An OCaml signal handler that raises (as Sys.catch_break's) runs where a
   stub polls: the stub must hold nothing then, and the handle must stay
   usable and be closed exactly once. *)
let test_signals () =
  let previous = Sys.signal Sys.sigusr1 (Sys.Signal_handle (fun _ -> incr handled ; raise Interrupted)) in
  let before = fake_open_handles () in
  let h = Xenuma.open_ () in
  check "signal: the handler raises out of the call" (interrupted (fun () -> Xenuma.physinfo h)) ;
  check "signal: the handler ran once" (!handled = 1) ;
  check "signal: the handle still works" (match Xenuma.physinfo h with p -> p.nr_cpus = 4) ;
  Xenuma.close h ;
  check "signal: close closes it" (fake_open_handles () = before) ;
  (* the signal comes inside the stub (the copy of recover's record path, under
     the runtime lock), past any poll of OCaml code: the call ends normally, the
     handler runs after *)
  let h = Xenuma.open_ () in
  let completed =
    match fake_signal_at_strdup Sys.sigusr1 ; Xenuma.recover h ~record:"/nonexistent/xenuma.batch" with
    | r ->
        (try fake_run_pending () with Interrupted -> ()) ;
        r = Xenuma.Nothing_to_do
    | exception Interrupted -> false
  in
  check "signal: one met inside a call waits for its end" (completed && !handled = 2) ;
  check "signal: ... the handle still works" (match Xenuma.physinfo h with p -> p.nr_cpus = 4) ;
  Xenuma.close h ;
  check "signal: ... close closes it (no call left counted in flight)" (fake_open_handles () = before) ;
  (* an interrupted move leaves nothing allocated (its gfn list is 32 KB) *)
  let record = record () in
  fake_guest_reset () ;
  let h = Xenuma.open_ () in
  let gfns = Array.init 4096 Fun.id in
  Gc.compact () ;
  let heap = fake_heap_in_use () in
  for _ = 1 to 100 do
    ignore (interrupted (fun () -> Xenuma.move ~record h ~domid:1 ~gfns ~node:1))
  done ;
  Gc.compact () ;
  let grown = fake_heap_in_use () - heap in
  check "signal: 100 interrupted moves leak no C memory" (abs grown < 16384) ;
  check "signal: ... and moved nothing" (all_on 0 (Array.init 2048 Fun.id) && settled record) ;
  (* close with the signal pending: the handle is closed once, whatever the handler raises *)
  ( match fake_signal_pending Sys.sigusr1 ; Xenuma.close h ; fake_run_pending () with
  | () | (exception Interrupted) -> () ) ;
  check "signal: close with a signal pending closes the handle" (fake_open_handles () = before) ;
  check "signal: ... later calls get EBADF"
    (match raised (fun () -> Xenuma.physinfo h) with Some (Unix.EBADF, _) -> true | _ -> false) ;
  Xenuma.close h ;
  (* the last call in flight closes a handle closed meanwhile, with the signal pending *)
  let h = Xenuma.open_ () in
  fake_hold_physinfo true ;
  (* the handler runs in whichever thread polls first: each does so where it catches it *)
  let caller =
    Thread.create (fun () -> try ignore (Xenuma.physinfo h) ; fake_run_pending () with Interrupted -> ()) ()
  in
  let waited = ref 0 in
  while fake_held () = 0 && !waited < 10_000 do Thread.delay 0.001 ; incr waited done ;
  Xenuma.close h ;
  ( match fake_release_physinfo_with_signal Sys.sigusr1 before ; fake_run_pending () with
  | () | (exception Interrupted) -> () ) ;
  Thread.join caller ;
  check "signal: the call in flight closed the handle, once"
    (fake_open_handles () = before && fake_used_after_close () = 0) ;
  Sys.set_signal Sys.sigusr1 previous

(* xenopsd is threaded: one thread may close a handle while another's call is
   inside Xen (the runtime lock released).  The handle must stay open until
   that call ends, and later calls must get EBADF. *)
let test_close_during_a_call () =
  let before = fake_open_handles () in
  let h = Xenuma.open_ () in
  fake_hold_physinfo true ;
  let answer = ref None in
  let caller = Thread.create (fun () -> answer := Some (Xenuma.physinfo h)) () in
  let waited = ref 0 in
  while fake_held () = 0 && !waited < 10_000 do Thread.delay 0.001 ; incr waited done ;
  check "close race: the call is inside the library" (fake_held () = 1) ;
  (* a collection while the call is out (compaction may move the handle's block) *)
  Gc.compact () ;
  Xenuma.close h ;
  check "close race: the handle stays open while the call is in flight" (fake_open_handles () = before + 1) ;
  check "close race: a later call gets EBADF"
    (match raised (fun () -> Xenuma.physinfo h) with Some (Unix.EBADF, _) -> true | _ -> false) ;
  Xenuma.close h ;
  fake_hold_physinfo false ;
  Thread.join caller ;
  check "close race: the call in flight ends with its answer"
    (match !answer with Some p -> p.Xenuma.nr_cpus = 4 | None -> false) ;
  check "close race: no call used a closed interface" (fake_used_after_close () = 0) ;
  check "close race: the last call closed the handle" (fake_open_handles () = before)

(* One round of everything that allocates: handles dropped (finaliser) or
   closed, arrays, records, raised errors. *)
let churn i =
  let h = Xenuma.open_ () in
  ignore (Xenuma.topology h) ;
  ignore (Xenuma.domains h) ;
  ignore (Xenuma.vcpu_affinity h ~domid:1 ~vcpu:0) ;
  ignore (Xenuma.claim h ~domid:1 ~node:1 1L) ;
  ignore (raised (fun () -> Xenuma.vcpu_info h ~domid:9 ~vcpu:0)) ;
  ignore (Xenuma.vnuma h ~domid:1) ;
  ignore (raised (fun () -> Xenuma.vnuma h ~domid:9)) ;
  if i mod 2 = 0 then Xenuma.close h

let test_no_leak () =
  for i = 1 to 200 do churn i ; Gc.compact () done ;
  let heap = fake_heap_in_use () in
  for i = 1 to 10_000 do churn i ; Gc.compact () done ;
  Gc.compact () ;
  let grown = fake_heap_in_use () - heap in
  Printf.printf "10000 rounds: %d handles open, C heap grew by %d bytes\n" (fake_open_handles ()) grown ;
  check "every handle closed (finalisers included)" (fake_open_handles () = 0) ;
  check "C heap flat over 10,000 rounds" (abs grown < 16384) ;
  (* topology on a host with parked CPUs (the online CPUs read from the pools),
     and that read failing: each variable set once, outside the rounds measured
     (putenv keeps every string it is given) *)
  let h = Xenuma.open_ () in
  let flat name vars f =
    List.iter (fun (k, v) -> Unix.putenv k v) vars ;
    for _ = 1 to 200 do f () done ;
    Gc.compact () ;
    let heap = fake_heap_in_use () in
    for _ = 1 to 10_000 do f () done ;
    Gc.compact () ;
    let grown = fake_heap_in_use () - heap in
    List.iter (fun (k, _) -> Unix.putenv k "") vars ;
    Printf.printf "10000 rounds, %s: C heap grew by %d bytes\n" name grown ;
    check ("C heap flat over 10,000 rounds: " ^ name) (abs grown < 16384)
  in
  flat "parked CPUs" [("FAKE_XC_PARKED_CPUS", "2")] (fun () ->
      ignore (Xenuma.topology h) ;
      ignore (Xenuma.online_cpus h)) ;
  flat "the free-CPU read failing" [("FAKE_XC_PARKED_CPUS", "2"); ("FAKE_XC_FAIL", "xc_cpupool_freeinfo=EPERM")]
    (fun () -> ignore (raised (fun () -> Xenuma.topology h))) ;
  Xenuma.close h

let () =
  let mode = if Array.length Sys.argv > 1 then Sys.argv.(1) else "stock" in
  check "the fake libxenctrl is loaded" (fake_open_handles () >= 0) ;
  let h = Xenuma.open_ () in
  test_map_sizes h ;
  test_queries h ;
  test_dma_zone h ;
  test_affinity_needs_a_map h ;
  test_dump () ;
  test_errors h ;
  test_vnuma h ;
  test_ranges h ;
  test_capture_dump h ;
  test_move h ;
  test_scan_probe h ;
  test_recover h ;
  test_recover_a_raise h ;
  if mode = "patched" then test_patched h else test_stock h ;
  Xenuma.close h ;
  test_close_during_a_call () ;
  test_signals () ;
  test_no_leak () ;
  (try Unix.rmdir (Lazy.force record_dir) with Unix.Unix_error _ -> ()) ;
  Printf.printf "%d passed, %d failed\n" !passed !failed ;
  exit (if !failed = 0 then 0 else 1)
