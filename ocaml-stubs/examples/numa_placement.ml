(* What xenopsd's numa_placement does, with Xenuma's calls: read the
   topology, plan the nodes for a VM (the fewest, closest nodes whose free
   memory holds it, as Softaffinity.plan would), claim its memory there,
   and point its vCPUs' soft affinity and its node affinity at those nodes.

     numa_placement DOMID MEMORY_MIB [--dry-run]

   The domain should be created paused and not yet populated (as xenopsd
   does it: plan and claim, then build). *)

let pages_of_mib mib = Int64.(mul (of_int mib) 256L)

(* Nodes ordered by distance from [first]. *)
let by_distance (t : Xenuma.topology) first =
  let nodes = List.init (Array.length t.distances) Fun.id in
  List.stable_sort (fun a b -> compare t.distances.(first).(a) t.distances.(first).(b)) nodes

(* The plan: the node with the most free memory if the VM fits there alone;
   otherwise grow outwards from it by distance until the free memory adds up. *)
let plan (t : Xenuma.topology) ~bytes =
  let free n = t.memory.(n).free in
  let best = ref 0 in
  Array.iteri (fun n (m : Xenuma.node_memory) -> if m.free > free !best then best := n) t.memory ;
  let rec take acc total = function
    | _ when total >= bytes -> Some (List.rev acc)
    | [] -> None
    | n :: rest -> take (n :: acc) (Int64.add total (free n)) rest
  in
  take [] 0L (by_distance t !best)

let cpus_of (t : Xenuma.topology) nodes =
  Array.map (fun node -> List.mem node nodes) t.cpu_to_node

(* A claim Xen refuses for want of free memory is raised (ENOMEM), not
   returned: here it is one more reason to fall back, or to say none. *)
let claim h ~domid ?node pages =
  try Xenuma.claim h ~domid ?node pages with Xenuma.Error ((Unix.ENOMEM as e), ctx) -> Error (e, ctx)

let usage () =
  prerr_endline "usage: numa_placement DOMID MEMORY_MIB [--dry-run]" ;
  exit 2

let fail fmt = Printf.ksprintf (fun msg -> prerr_endline ("numa_placement: " ^ msg) ; exit 1) fmt

(* The domain, looked for before anything is planned or claimed: one that does not
   exist is said as such (Xen's answer to a claim on it would be the first sign). *)
let domain_of h domid =
  match List.find_opt (fun (x : Xenuma.domain) -> x.domid = domid) (Array.to_list (Xenuma.domains h)) with
  | Some d -> d
  | None -> fail "no domain %d on this host" domid

let place h ~domid ~mib ~dry_run =
  let d = domain_of h domid in
  let t = Xenuma.topology h in
  match plan t ~bytes:(Int64.mul (Int64.of_int mib) 1048576L) with
  | None -> fail "no set of nodes has %d MiB free" mib
  | Some nodes ->
      Printf.printf "plan: nodes %s\n" (String.concat "," (List.map string_of_int nodes)) ;
      if not dry_run then (
        (* one node: claim there if this Xen can (and the node has the memory);
           else a host-wide claim *)
        let claimed =
          match nodes with
          | [node] -> (
              match claim h ~domid ~node (pages_of_mib mib) with
              | Ok () -> Printf.sprintf "on node %d" node
              | Error _ -> (
                  match claim h ~domid (pages_of_mib mib) with
                  | Ok () -> "host-wide (no per-node claim to be had here)"
                  | Error (e, _) -> "none: " ^ Unix.error_message e))
          | _ -> (
              match claim h ~domid (pages_of_mib mib) with
              | Ok () -> "host-wide"
              | Error (e, _) -> "none: " ^ Unix.error_message e)
        in
        Printf.printf "claim: %s\n" claimed ;
        let soft = cpus_of t nodes in
        for vcpu = 0 to d.max_vcpu_id do
          Xenuma.set_vcpu_affinity h ~domid ~vcpu ~soft ()
        done ;
        Xenuma.set_node_affinity h ~domid (Array.init (Array.length t.distances) (fun n -> List.mem n nodes)) ;
        Printf.printf "affinity: soft on CPUs of nodes %s, node affinity set\n"
          (String.concat "," (List.map string_of_int nodes)))

let () =
  match Array.to_list Sys.argv with
  | _ :: domid :: mib :: rest when List.for_all (fun a -> a = "--dry-run") rest -> (
      match (int_of_string_opt domid, int_of_string_opt mib) with
      | Some domid, Some mib when domid >= 0 && mib > 0 -> (
          try Xenuma.with_handle (fun h -> place h ~domid ~mib ~dry_run:(rest <> []))
          with Xenuma.Error (e, ctx) ->
            (* the domain gone meanwhile (ESRCH), a refused call: said, not a backtrace *)
            fail "%s: %s" ctx (Unix.error_message e))
      | _ -> usage ())
  | _ -> usage ()
