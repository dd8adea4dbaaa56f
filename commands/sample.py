"""Command-line parser and handler of the ``sample`` command: labelled configurations beyond the protocol frames."""
from __future__ import annotations



def add_sample(sub):
    p = sub.add_parser("sample", help="label configurations beyond the protocol frames with the exact field "
                       "(thermal, perturbed, partly relaxed, other loads, other strengths) into a dataset folder")
    p.add_argument("--data", required=True, help="source dataset folder written by simulate")
    p.add_argument("--out", required=True, help="new dataset folder, same format (a rerun resumes)")
    p.add_argument("--kinds", default="thermal,perturb,relaxed,load,restrength",
                   help="comma list of thermal, perturb, relaxed, load, restrength (default all)")
    p.add_argument("--runs-per-kind", type=int, default=None, help="source runs per kind (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run_sample)


def _run_sample(args):
    from cgsurrogate.data.sampling import sample_dataset

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    res = sample_dataset(args.data, args.out, kinds, args.runs_per_kind, args.seed, progress=not args.no_progress)
    print(f"{res['out']}: {res['num_runs']} sampled runs ({res['already_done']} already on disk, "
          f"{len(res['computed'])} computed now)")
    return 0
