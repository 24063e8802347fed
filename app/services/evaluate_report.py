"""Human-readable printout of an evaluation result."""
from __future__ import annotations


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def print_report(r: dict) -> None:
    print(f"evaluation of {r['data']}")
    print("\ndetection")
    print(f"  {'subset':<28}{'images':>8}{'no face':>9}{'faces/image':>13}")
    for name, d in r["detection"].items():
        name = name if len(name) <= 27 else name[:24] + "..."
        print(f"  {name:<28}{d['images']:>8}{d['images_without_face']:>9}{d['faces_per_image']:>13.2f}")
    sep = r.get("embedding_separation") or {}
    if sep:
        print("\nembedding separation (main faces)")
        print(f"  ROC AUC same vs different identity   {sep['auc']:.4f}")
        print(f"  similarity at false-match rate 1e-3  {sep['similarity_at_fmr_1e-3']:.3f}")
        print(f"  similarity at false-match rate 1e-4  {sep['similarity_at_fmr_1e-4']:.3f}")
        print(f"  same-identity pairs >= threshold     {_pct(sep['same_pairs_at_threshold'])}")
    dec = r.get("decision_separation") or {}
    if dec:
        print(f"\ndeciding embedding ({r['settings']['embedder']}) separation (main faces)")
        print(f"  ROC AUC same vs different identity   {dec['auc']:.4f}")
        print(f"  similarity at false-match rate 1e-3  {dec['similarity_at_fmr_1e-3']:.3f}")
        print(f"  similarity at false-match rate 1e-4  {dec['similarity_at_fmr_1e-4']:.3f}")
        print(f"  same-identity pairs >= link bound    {_pct(dec['same_pairs_at_threshold'])}")
    c = r["clustering"]
    print(f"\nclustering ({r['main_face_rule']})")
    print(f"  pairwise  precision {c['pairwise']['precision']:.3f}  recall {c['pairwise']['recall']:.3f}"
          f"  F1 {c['pairwise']['f1']:.3f}")
    print(f"  BCubed    precision {c['bcubed']['precision']:.3f}  recall {c['bcubed']['recall']:.3f}"
          f"  F1 {c['bcubed']['f1']:.3f}")
    print(f"  persons made {c['persons_made']} for {c['identities']} identities; unassigned "
          f"{_pct(c['unassigned_share'])} ({_pct(c.get('unassigned_share_named', c['unassigned_share']))} of the "
          f"folder's own identities); largest mixed person holds "
          f"{c['largest_mixed_person_identities']} identities")
    if "largest_mixed_person_named_identities" in c:
        print(f"  largest mix among the folder's own identities (strangers left out): "
              f"{c['largest_mixed_person_named_identities']}")
    st = r.get("strangers")
    if st:
        print(f"\nstrangers: {st['merged']} of {st['strangers']} ({_pct(st['merged_share'])}) share a person "
              f"with someone else; {st['without_main_face']} had no face found")
    cv = r.get("cross_validation")
    if cv:
        print(f"\ncross-validation over identities ({len(cv['folds'])} folds: settings chosen on the others)")
        for f in cv["folds"]:
            print(f"  fold {f['fold']}: P {f['pairwise']['precision']:.4f}  R {f['pairwise']['recall']:.4f}"
                  f"  F1 {f['pairwise']['f1']:.4f}  BCubed F1 {f['bcubed']['f1']:.4f}  strangers merged "
                  f"{f['strangers_merged']}/{f['strangers']}  unassigned {_pct(f['unassigned_share'])}"
                  f"  [{f['chosen']}]")
        m = cv["mean"]
        print(f"  mean: P {m['pairwise_precision']:.4f}  R {m['pairwise_recall']:.4f}  F1 {m['pairwise_f1']:.4f}"
              f"  BCubed F1 {m['bcubed_f1']:.4f}; worst fold F1 {cv['worst_pairwise_f1']:.4f}")
        print(f"  chosen most often: {cv['chosen_most']} "
              f"({'the defaults' if cv['default_is_chosen_most'] else 'NOT the defaults: ' + cv['default']})")
    inc = r.get("incremental")
    if inc:
        print(f"\nincremental: {inc['added_photos']} photos added to known identities")
        for key in ("joined_right_person", "joined_wrong_person", "new_person", "unassigned"):
            print(f"  {key.replace('_', ' '):<24}{inc.get(key, 0):>6}")
        print(f"  joined the right person: {_pct(inc['joined_right_share'])}; a wrong one: "
              f"{_pct(inc.get('joined_wrong_person', 0) / inc['added_photos'] if inc['added_photos'] else 0.0)}")
        if "strangers_merged_after" in inc:
            late = inc["strangers_merged_late"]
            print(f"  strangers in a person with someone else: {inc['strangers_merged_first_run']} after the first"
                  f" run, {inc['strangers_merged_after']} after the second ({len(late)} joined in it"
                  + (f": {', '.join(late)})" if late else ")"))
    print("\ntimings (seconds)")
    for stage, secs in r["timings_seconds"].items():
        print(f"  {stage:<14}{secs:>8.1f}")
    if r.get("sweep"):
        print("\nclustering sweep (main faces, no database)")
        for row in r["sweep"]:
            knobs = ", ".join(f"{k}={v}" for k, v in row.items()
                              if k in ("cluster_algorithm", "hdbscan_epsilon", "hdbscan_umap_epsilon", "dbscan_eps",
                                       "cluster_use_umap"))
            print(f"  {knobs:<60} P {row['pairwise_precision']:.3f}  R {row['pairwise_recall']:.3f}"
                  f"  B3-F1 {row['bcubed_f1']:.3f}  clusters {row['clusters']}  noise {_pct(row['noise_share'])}")
    print(f"\ntotal {r['total_seconds']:.0f} s")
