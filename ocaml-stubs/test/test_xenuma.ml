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
  let p = Xenuma.physinfo h in
  check "physinfo" (p.nr_cpus = 4 && p.nr_nodes = 2 && p.sched_id = 6) ;
  let doms = Xenuma.domains h in
  check "domains" (Array.length doms = 2 && Xenuma.is_hvm doms.(1) && not (Xenuma.is_hvm doms.(0))) ;
  check "uuid" (Xenuma.uuid_string doms.(1) = "00000000-0000-0000-0000-000000000001") ;
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
    (match raised (fun () -> Xenuma.unpause h ~domid:1) with Some (Unix.EINVAL, _) -> true | _ -> false)

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
  check "PV guest not movable"
    (match raised (fun () -> Xenuma.movable_check h ~domid:0) with
    | Some (Unix.EPROTOTYPE, ctx) -> contains ctx "PV guest"
    | _ -> false) ;
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
  check "EPERM from the patched claim is raised"
    (failing "xc_domain_claim_pages_node=EPERM" (fun () ->
         match raised (fun () -> Xenuma.claim h ~domid:1 ~node:0 1L) with
         | Some (Unix.EPERM, _) -> true
         | _ -> false))

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
  check "C heap flat over 10,000 rounds" (abs grown < 16384)

let () =
  let mode = if Array.length Sys.argv > 1 then Sys.argv.(1) else "stock" in
  check "the fake libxenctrl is loaded" (fake_open_handles () >= 0) ;
  let h = Xenuma.open_ () in
  test_queries h ;
  test_dump () ;
  test_errors h ;
  test_vnuma h ;
  if mode = "patched" then test_patched h else test_stock h ;
  Xenuma.close h ;
  test_close_during_a_call () ;
  test_no_leak () ;
  Printf.printf "%d passed, %d failed\n" !passed !failed ;
  exit (if !failed = 0 then 0 else 1)
