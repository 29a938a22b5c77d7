"""``sparsecodec simulate``: write a simulated dataset in the public sPHENIX layout."""

from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate TPC events and write them in the public dataset layout",
        description=(
            "Simulate sPHENIX TPC outer-layer events (helical tracks, ionization, diffusion, pad "
            "response, shaping, pileup, 10-bit ADC, zero suppression) and write the 24 wedges of "
            "each event, train.txt, test.txt, occupancy_by_wedge.csv and simulation.json."
        ),
    )
    from ..data.simulate.presets import PRESETS

    parser.add_argument("-o", "--output", required=True, help="dataset folder to write")
    parser.add_argument(
        "--preset", default="auau-central-170khz", choices=sorted(PRESETS), help="collision system and pileup"
    )
    parser.add_argument("--events", type=int, default=4, help="number of events (24 wedges each); default 4")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    parser.add_argument(
        "--occupancy",
        type=float,
        default=None,
        help="target mean wedge occupancy (fraction, 5e-4..0.4): rescales the track multiplicity",
    )
    parser.add_argument(
        "--pileup-rate-khz", type=float, default=None, help="pileup collision rate in kHz (default: the preset's)"
    )
    parser.add_argument(
        "--extra-noise-adc",
        type=float,
        default=0.0,
        help="extra Gaussian noise RMS in ADC counts, added in quadrature to the 1 ADC electronics noise",
    )
    parser.add_argument(
        "--no-eta-cut", action="store_true", help="keep wavelets beyond |eta| = 1.1 (the public data drops them)"
    )
    parser.add_argument("--test-fraction", type=float, default=0.25, help="fraction of events in test.txt")
    parser.add_argument("--first-experiment", type=int, default=0, help="experiment number of the first ten events")
    parser.add_argument("--workers", type=int, default=1, help="processes simulating events in parallel")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in the output folder")
    parser.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..data.simulate import simulate_dataset

    changes = {"extra_noise_adc": args.extra_noise_adc, "eta_acceptance_cut": not args.no_eta_cut}
    if args.pileup_rate_khz is not None:
        changes["pileup_rate_khz"] = args.pileup_rate_khz
    summary = simulate_dataset(
        args.output,
        preset=args.preset,
        events=args.events,
        seed=args.seed,
        occupancy_target=args.occupancy,
        test_fraction=args.test_fraction,
        first_experiment=args.first_experiment,
        workers=args.workers,
        progress=not args.quiet,
        overwrite=args.overwrite,
        **changes,
    )

    values = summary.occupancies
    report = {
        "output": str(summary.root),
        "preset": summary.config.name,
        "seed": summary.seed,
        "events": summary.events,
        "wedges": int(values.size),
        "train_wedges": sum(record.split == "train" for record in summary.records),
        "test_wedges": sum(record.split == "test" for record in summary.records),
        "occupancy_mean": float(values.mean()),
        "occupancy_min": float(values.min()),
        "occupancy_max": float(values.max()),
        "occupancy_p05": float(np.percentile(values, 5)),
        "occupancy_p95": float(np.percentile(values, 95)),
        "seconds": round(summary.seconds, 3),
        "seconds_per_event": round(summary.seconds / summary.events, 3),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    width = max(len(key) for key in report)
    for key, value in report.items():
        text = f"{value:.5f}" if isinstance(value, float) and key.startswith("occupancy") else value
        print(f"{key:<{width}}  {text}")
    return 0
