(* Run in dom0 of a real Xen host by tests/xen/dom0/test_ocaml_real.py:
   prints what the OCaml binding reads, one fact per line, for the test to
   compare with xl and the debug-key dump.

     xenuma_check topology
     xenuma_check pages DOMID
     xenuma_check move DOMID NODE MAX_PAGES RECORD *)

let topology h =
  let t = Xenuma.topology h in
  Printf.printf "nodes %d\n" (Array.length t.distances) ;
  Array.iteri
    (fun a row -> Array.iteri (fun b d -> Printf.printf "distance %d %d %d\n" a b d) row)
    t.distances ;
  Array.iteri (fun cpu node -> Printf.printf "cpu %d node %d\n" cpu node) t.cpu_to_node ;
  Array.iteri
    (fun i (m : Xenuma.node_memory) -> Printf.printf "memory %d %Ld %Ld\n" i m.size m.free)
    t.memory ;
  let f = Xenuma.features h in
  Printf.printf "node_pages %s\n" (if f.node_pages = `Native then "native" else "fallback")

let pages h domid =
  let nr_nodes = Array.length (Xenuma.topology h).distances in
  let per_node =
    match Xenuma.node_pages h ~domid ~nr_nodes with
    | Ok pages -> pages
    | Error _ -> fst (Xenuma.node_pages_of_dump (Xenuma.capture_dump h) ~domid ~nr_nodes)
  in
  Array.iteri (fun node p -> Printf.printf "pages %d %Ld\n" node p) per_node

(* Scan, then move the first max RAM gfns to node in 512-page batches, each
   under the batch record. *)
let move h domid node max record =
  let classes, _ = Xenuma.scan h ~domid in
  (* counted as they come: List.length on each of a million gfns took minutes of dom0's CPU *)
  let ram = ref [] and taken = ref 0 in
  Bytes.iteri
    (fun gfn c ->
      if !taken < max && Xenuma.gfn_class_of_char c = Xenuma.Ram then (
        ram := gfn :: !ram ;
        incr taken
      ) )
    classes ;
  let gfns = Array.of_list (List.rev !ram) in
  let moved = ref 0L and lost = ref 0L and granted = ref 0L and batches = ref 0 and errors = ref 0 in
  let n = Array.length gfns in
  let rec go first =
    if first < n then (
      let len = min 512 (n - first) in
      let r = Xenuma.move ~allow_fallback:true ~record h ~domid ~gfns:(Array.sub gfns first len) ~node in
      moved := Int64.add !moved r.moved ;
      lost := Int64.add !lost r.lost ;
      granted := Int64.add !granted r.granted ;
      incr batches ;
      if r.error <> None then incr errors ;
      go (first + len)
    )
  in
  go 0 ;
  Printf.printf "moved %Ld lost %Ld granted %Ld batches %d errors %d busy %b\n" !moved !lost !granted !batches
    !errors (Xenuma.record_busy record)

let () =
  let arg i = Sys.argv.(i) in
  try
    Xenuma.with_handle (fun h ->
        match Array.length Sys.argv with
        | 2 when arg 1 = "topology" -> topology h
        | 3 when arg 1 = "pages" -> pages h (int_of_string (arg 2))
        | 6 when arg 1 = "move" ->
            move h (int_of_string (arg 2)) (int_of_string (arg 3)) (int_of_string (arg 4)) (arg 5)
        | _ ->
            prerr_endline "usage: xenuma_check topology | pages DOMID | move DOMID NODE MAX_PAGES RECORD" ;
            exit 2)
  with Xenuma.Error (e, ctx) ->
    Printf.eprintf "xenuma_check: %s: %s\n" ctx (Unix.error_message e) ;
    exit 1
