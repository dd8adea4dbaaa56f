"""Command-line parser and handler of the ``hierarchy`` command: graph hierarchies and LGDD prolongations."""
from __future__ import annotations


from cgsurrogate.commands.arguments import CLIError, finite_float, input_file, output_file


def add_hierarchy(sub):
    p = sub.add_parser(
        "hierarchy",
        help="compute (or load) a graph hierarchy with LGDD prolongations, print sizes and distances, save it",
        description="Compute (or load) a graph hierarchy, finest graph first, with prolongation matrices from "
        "the linear graph diffusion distance (alpha = 1, cached on disk); print sizes and distances; save it. "
        "Graphs: Tube(n,k,p), Tube(n,k,p,w2) (seam weight 2), Grid(n,k), Path(n), Cycle(n). "
        "Default: the microtubule hierarchy Tube(48,13,3) Tube(24,13,1) Tube(24,3,0).",
    )
    p.add_argument("graphs", nargs="*", metavar="GRAPH", help="graphs, finest first (default: microtubule)")
    p.add_argument("--load", metavar="PATH", help="load a saved hierarchy instead of computing one")
    p.add_argument("--out", metavar="PATH", help="save the hierarchy here (torch file, weights_only loadable)")
    p.add_argument("--alpha", type=finite_float, default=1.0, help="alpha of the prolongation problem (default 1)")
    p.add_argument("--refine", action="store_true", help="polish each P on the Stiefel manifold (pymanopt)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $CGS_CACHE_DIR or ~/.cache/cgsurrogate)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--no-optimal-alpha", action="store_true", help="skip the alpha-optimised distances")
    p.set_defaults(func=_run_hierarchy)


def _run_hierarchy(args):
    import time

    from cgsurrogate.surrogate.graphs.weighted_graph import parse_graph
    from cgsurrogate.surrogate.graphs.hierarchy import MICROTUBULE_GRAPHS, Hierarchy, build_hierarchy, hierarchy_report

    if not args.alpha > 0:
        raise CLIError(f"--alpha must be positive, got {args.alpha}")
    if args.load and args.graphs:
        raise CLIError("give either GRAPH arguments or --load, not both")
    if args.out:
        output_file(args.out, "--out", inputs=[args.load])
    graphs = [parse_graph(g) for g in args.graphs] if args.graphs else list(MICROTUBULE_GRAPHS)
    t0 = time.perf_counter()
    if args.load:
        h = Hierarchy.load(input_file(args.load, "--load"))
        how = f"loaded {args.load}"
    else:
        h = build_hierarchy(graphs, alpha=args.alpha, refine=args.refine, cache_dir=args.cache_dir,
                            use_cache=not args.no_cache, progress=True)
        how = "computed or read from cache"
    elapsed = time.perf_counter() - t0
    rows = hierarchy_report(h, optimal_alpha=not args.no_optimal_alpha)
    print(f"{'level':>5}  {'graph':<18}{'nodes':>7}{'edges':>7}  {'D(alpha=' + format(h.alpha, 'g') + ')':>12}"
          + ("" if args.no_optimal_alpha else f"{'D(opt)':>10}{'alpha*':>9}"))
    for r in rows:
        line = f"{r['level']:>5}  {r['graph']:<18}{r['nodes']:>7}{r['edges']:>7}"
        if r["level"] > 0:
            line += f"  {r['distance']:>12.5f}"
            if "distance_opt" in r:
                line += f"{r['distance_opt']:>10.5f}{r['alpha_opt']:>9.4f}"
        print(line)
    print(f"hierarchy {h.names} {how} in {elapsed:.2f} s; distances are to the next finer level")
    if args.out:
        print(f"saved {h.save(args.out)}")
    return 0
