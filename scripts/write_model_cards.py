"""Write each default model's CARD.md and the summary docs/MODELS.md from its package.

The numbers (per-depth validation Dice and seconds, split, command, commit) are read from
``UNetPlusPlus/UNetPlusPlusLib/Resources/Models/<task>/model.json`` (and ``evaluation.md``,
from scripts/evaluate_*.py, when present), so a retrained model gets a matching card by re-running

    python scripts/write_model_cards.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"
DEPTH_KEYS = ("1", "2", "3", "4", "ensemble")

TEXT = {
    "liver": {
        "title": "Liver on CT",
        "training_note": "Two stages. Stage 1 (the first shipped model, sha256 `efb69a2e…`): "
        "2 CTs, 24 epochs x 35 iterations in three resumed runs (commit `72b1f523`). Stage 2, the "
        "command above: `--init` from stage 1 (all 148 tensors), LiTS volume 0 added, elastic / "
        "gamma / low-resolution augmentation, `--time-budget 95m` at one thread beside the two "
        "other models' training at nice 19 (the schedule was re-fitted to the measured pace each "
        "epoch). Both stages are in `scripts/train_default_models.sh`.",
        "headline": "Dice 0.918 / 0.914 at L3 on the held-out LiTS volume 1 (expert) / demo CT "
        "(TotalSegmentator output), volume -1.7 % / -8.4 % (input grid, largest component)",
        "summary": "3 CTs (LiTS expert, clinician-corrected, TotalSegmentator output) / 2 CTs "
        "(LiTS expert; TotalSegmentator output = the demo case)",
        "data": """\
- **Training data (3 CT scans — still very little):**
  - `liver_0`: the first 65 slices of LiTS training volume 0 (about 0.7 x 0.7 x 5 mm), **expert**
    reference (liver and tumour both counted as liver). LiTS data CC BY-NC-SA 4.0 (its Medical
    Segmentation Decathlon copy CC BY-SA 4.0): Bilic P. et al., Med. Image Anal. 84, 2023.
  - `ts-example-dicom`: TotalSegmentator example DICOM series (20 slices, 0.98 x 0.98 x 2 mm).
    Label: **TotalSegmentator model output** (label 5 = liver), not expert ground truth.
    Apache-2.0 (github.com/wasserth/TotalSegmentator, tests/reference_files).
  - `ts-s0009`: TotalSegmentator dataset case s0009 (1.5 mm abdominal CT). Label: model-assisted,
    **clinician-corrected** (liver partly outside the field of view). CC BY 4.0.
- **Validation (held out, never trained on, 2 scans):** `liver_1`, the first 65 slices of LiTS
  training volume 1 (**expert** reference, tumour counted as liver), and `ts-example-ct`, the
  abdomen and pelvis example CT bundled as `Resources/Examples/example_ct.nii.gz` (the demo
  case; its top slice cuts the liver dome), whose
  reference is **TotalSegmentator model output** (agreement with another model, not with an
  expert). The demo therefore runs on a case the model never trained on.
- Citation: Wasserthal J. et al., "TotalSegmentator: Robust Segmentation of 104 Anatomic Structures
  in CT Images", Radiology: Artificial Intelligence 5(5), 2023.""",
        "limits": """\
- Trained on **three** CT scans (one has only 20 slices, one only 65), with strong augmentation
  (flips, rotation, scaling, elastic deformation, intensity, gamma, simulated low resolution,
  noise). It has seen almost no anatomical or scanner variation: expect failures on other
  scanners, contrast phases, pathology (large tumours, cirrhosis), children and MR.
- The trainer's validation scores the raw argmax on the 3 mm grid (no post-processing), so it is
  lower than the user-facing evaluation: the network also labels scattered voxels outside the
  liver, which the largest-component step removes. It still under-segments a little (demo CT
  about 1030 ml against 1126 ml at L3; the first model gave 815 ml); at L2 the demo CT's volume
  is 10.3 % low, so L3 is recommended.
- Validation is **two** scans, one with model-generated labels and one partial (65 slices) with
  expert labels: the targets (Dice >= 0.90, volume within 10 %) are met on both at L3 and L4,
  but two cases cannot show how the model does on the next scanner; treat the numbers as a
  sanity check, not a performance claim.
- Mirror test-time augmentation is limited to the y and z axes (a left-right mirror puts the
  liver on the wrong side).
- It finds "liver" in CTs without one: the heart of a chest crop (502 ml on
  `pulm_ct_cropped.nii.gz`), 66 ml in the pelvis below the liver. The anatomy check
  (`inference.anatomy`, docs/INPUT_CHECKS.md) warns about both; look at the result anyway.
- 3 mm working resolution: thin structures at the liver boundary are smoothed; the result is
  resampled back onto the input grid.
- Short training on shared CPUs (see the command); a GPU run with more epochs would do better.
- Not a medical device; research and demonstration use only.""",
    },
    "lung-nodule": {
        "title": "Lung nodule on CT (point-prompted)",
        "headline": "point prompt: Dice 0.826 on 164 held-out crops (0.824 before the box "
        "re-run of session 6); DICOM slabs 0.91 / 0.91 "
        "(patients seen in training) and 0.35 (unseen patient)",
        "training_note": "Four stages. Stage 1 (the first shipped model): 16 epochs x 50 "
        "iterations. Stage 2: `--init` from stage 1, elastic / gamma / low-resolution "
        "augmentation, `--time-budget 95m` (21 epochs x 70 iterations). Stage 3 (session 4): "
        "`--init` from stage 2, half the learning rate (5e-4), `--precision fp32` (a try under "
        "bf16 autocast stopped on a NaN loss; the trainer now falls back to float32 by itself), "
        "`--time-budget 80m` at one thread (59 epochs x 44 iterations; 0.815 on the 164 crops "
        "as a user runs it). Stage 4, the command above (session 5): `--init` from stage 3 (the "
        "shipped model of sha256 e6ca3204..., copied to /work/runs/s5/nodule-init), learning "
        "rate 3e-4, float32, `--time-budget 95m` at two threads, nice 19, on the shared machine "
        "beside other work (18 epochs x 253 iterations, 94 minutes; mean training loss per "
        "epoch about 0.24 at the start, about 0.21 and flat over the last epochs). The code "
        "was commit 6811e18 (run from a copy of it, so the trainer could not read the commit; "
        "it was written in by hand). The trainer "
        "validated on the first 60 of the 164 held-out crops (`--max-val-cases 60`), "
        "scripts/evaluate_nodule.py on all of them. **Recommended depth set to L3 by hand:** "
        "the trainer's rule (the shallowest depth within 0.01 of the best, on those 60 crops) "
        "gave L2 (0.818 vs 0.826 at L4), but as a user runs it L3 is better on all 164 crops "
        "(0.824, against 0.816 at L2 and 0.823 at L4) and on the unseen-patient slab (0.35 vs "
        "0.23 at L2), for about 0.1 s more per click. All stages are in "
        "`scripts/train_default_models.sh`.",
        "summary": "650 LIDC crops / 164 crops of other patients; expert outlines",
        "data": """\
- **Data:** 814 nodule-centred CT crops ("volumes of interest") from 444 LIDC-IDRI patients,
  masks from the LIDC radiologists' outlines (**expert** labels). Split **by patient**
  (`LIDC-IDRI-<patient>_R_<n>`): 20 % of the patients held out for validation.
  Crops via github.com/PabloLION/ct-slicing; images LIDC-IDRI, **CC BY 3.0** (Armato S. G. III et
  al., Med. Phys. 38(2), 2011; The Cancer Imaging Archive, doi:10.7937/K9/TCIA.2015.LO9QL9SX).
- **Usage:** click a point on the nodule (`unetpp segment ct --task lung-nodule --point X Y Z`,
  RAS mm on the command line); the model segments the `box_mm` box around it.""",
        "limits": """\
- The training crops are small (median about 31 x 31 x 7.5 mm) and thin in z, so the network saw
  little tissue above and below nodules; on full scans it can spill into vessels or the chest
  wall that touch the nodule. It needs a click on (or very near) the nodule and is not a
  detector.
- On the one full-resolution slab of a patient it never saw (LIDC-IDRI-0002, table above) it
  under-segmented the nodule by more than half (599 voxels against 1406, Dice 0.35; 0.23 at
  L2; round 3 gave 778 voxels, 0.36): the 0.824 on crops does not carry over to whole scans;
  check each outline. It is not the box: the reference lies wholly inside it and the outline
  meets a face inside the image with one voxel only. The nodule is part-solid (the
  reference's median is -574 HU); the model outlines only its denser core (its voxels average
  -349 HU, the missed ones -574 HU), and the nodule goes on beyond the slab's first slice.
  The box check changes none of the three slabs (0.913 / 0.353 / 0.908: their outlines meet a
  face with under 20 % of their largest section; with a 5 % threshold, tried first, extra
  passes lowered them to 0.890 / 0.353 / 0.901 by adding voxels above and below the
  references).
- **The click's box** (32 x 32 x 20 mm). When the outline kept at the click reaches a face of
  the box inside the image (with at least 20 % of its largest section), the engine centres the
  box on it, or enlarges it up to 3 times, and runs again, at most twice more; an outline that
  still reaches a face comes with the warning "The nodule may extend beyond the analysed box".
  On the 164 held-out crops at L3, before -> after (`python scripts/evaluate_nodule.py
  <this folder> ../shared/data/lung-nodule centre|offset 2.5|edge 2.0`): click at the centre
  0.824 -> 0.826 (10 clicks took an extra pass, no warning); 2.5 mm from the centre towards the
  farthest edge 0.825 -> 0.826; 2 mm outside the farthest in-plane edge 0.711 -> 0.734, where
  partial outlines cut by the box (Dice < 0.5) went from 8, none warned, to 2 (one warned;
  LIDC-IDRI-0404_R_1, 0.43, spreads in z once the box grows; it also drops from 0.72 to 0.56
  with the click at the centre). The other outlines under 0.5 with those clicks are not the
  box: 14 empty results with the "Nothing was found at the clicked point" message and 2 small
  wrong blobs without a warning (LIDC-IDRI-0120_R_3, LIDC-IDRI-0240_R_1).
- Short training on shared CPUs (see the command); more epochs on a GPU would do better.
- Not a medical device; research and demonstration use only.""",
    },
    "brain-tumor": {
        "title": "Brain tumour (glioma sub-regions) on MR",
        "headline": "BraTS regions WT / TC / ET Dice 0.726 / 0.688 / 0.577 (4 held-out cases); "
        "BRATS 2012 HG0001 WT 0.89",
        "summary": "14 BraTS 2018 cases / 4 other cases; expert labels",
        "training_note": "Three stages. Stage 1 (the first shipped model): 12 cases, 12 epochs, "
        "resumed to 20 (x 50 iterations). Stage 2: `--init` from stage 1 (all 148 tensors), the "
        "two newly added cases (14 for training, the same 4 held out), elastic / gamma / "
        "low-resolution augmentation, `--time-budget 95m` at one thread, lr 1e-3. Stage 3 "
        "(session 6), the command above: `--init` from stage 2, the same split, lr 3e-4 in "
        "float32, two threads, `--time-budget 100m` at nice 19 beside other work (80 epochs x 25 "
        "iterations; the schedule was re-fitted to the measured pace each epoch). As a user runs "
        "it (scripts/evaluate_brain_tumor.py, L2, 4 held-out cases) WT / TC / ET went from 0.718 "
        "/ 0.661 / 0.560 to 0.726 / 0.688 / 0.577 and BRATS 2012 HG0001 WT from 0.884 to 0.889; "
        "per case the change is mixed (Brats18_2013_11_1 lost 0.075 WT, Brats18_TCIA02_606_1 "
        "gained 0.096), and with 4 cases differences below about 0.05 are noise. All stages are "
        "in `scripts/train_default_models.sh`.",
        "data": """\
- **Data:** 18 BraTS 2018 training cases (one patient each; 14 trained on, 4 held out), four
  co-registered, skull-stripped sequences, **expert** manual labels (BraTS 2018 training set).
  Research use with citation: Menze B. H. et al., IEEE TMI 34(10), 2015; Bakas S. et al.,
  Sci. Data 4, 2017; Bakas S. et al., arXiv:1811.02629. Sample cases via
  github.com/koriavinash1/DeepBrainSeg (MIT code repository).
- **Inputs, in this order:** FLAIR, T1, T1ce, T2 (`unetpp segment flair t1 t1ce t2 --task
  brain-tumor`), each z-scored inside the brain.
- **Outputs (disjoint):** 1 = necrotic / non-enhancing tumour core (BraTS label 1),
  2 = oedema (BraTS 2), 3 = enhancing tumour (BraTS 4). BraTS regions: whole tumour = {1, 2, 3},
  tumour core = {1, 3}, enhancing tumour = {3}.
- BRATS 2012 (`brats2012-HG0001`, labels 1 = oedema, 2 = tumour core) cannot be mapped onto the
  three disjoint classes (its core does not separate necrosis from enhancing tumour); it was not
  used for training.""",
        "postprocess_note": """\
`postprocess.min_component_fraction` 0.1: connected components of the tumour (all labels
together, 26-connected, on the input grid) smaller than a tenth of the largest one are removed;
a second focus at least that large stays, so multifocal tumours are kept. `--all-components`
(CLI) turns it off. Chosen in session 5 from the held-out cases: at L2 whole-tumour Dice 0.705
-> 0.718 (per case +0.024, +0.030, 0.000, -0.001), core 0.660 -> 0.661, enhancing 0.559 ->
0.560; keeping only the largest component gave the same on these cases. On all 18 BraTS 2018
cases (14 of them seen in training) no case lost more than 0.003 and BRATS 2012 HG0001 was
unchanged (0.884). Four held-out cases are few: the gain is small and measured, not general.""",
        "checks": """\
The background must be exactly 0 (skull-stripped MR): a channel with less than 1 % of its
voxels exactly 0 is refused (the 19 BraTS cases: 76 % to 88 %; background set to 1, noise or
+500 gave about 600 ml of tumour instead of 100 ml on `Brats18_2013_11_1`), and so are two
channels that are the same image up to scale (rank correlation at least 0.98; different
sequences of the 19 cases: at most 0.78), whatever `--no-channel-check` says
(docs/INPUT_CHECKS_MR.md, "Background and near-duplicate MR channels").

The sequence order is checked before any work (`engine/channel_order.py`,
docs/INPUT_CHECKS_MR.md, "Sequence order of multi-channel MR"): the Spearman correlations
between the four channels and the skewness of each, inside the brain, are compared under all 24
orders with the reference of the training cases stored in `model.json`
(`inference.channel_fingerprint`), and T1 and T1ce are told apart by contrast enhancement
(gadolinium only raises T1 signal: the difference T1ce - T1 has a heavy bright tail,
`engine/contrast_pair.py`). A clearly wrong order is refused, naming which volume looks like
which sequence; a doubtful one is a warning, and so are volumes unlike the training data (the
order could not be checked); `--no-channel-check` (Slicer: untick **Check sequence order**)
skips it. On the 19 BraTS cases (training cases leave-one-out): no false alarm in the correct
order; of the 437 wrong orders 430 refused, 4 warned, 3 passed; T1 <-> T1ce is refused on all 19
cases.
The reference and the study are reproduced by

```
python scripts/channel_fingerprint.py ../shared/data/brain-tumor/brats2018 \\
    --dataset-json UNetPlusPlus/UNetPlusPlusLib/Resources/Datasets/brats2018.json \\
    --model UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor --study --write \\
    --extra brats2012-HG0001 \\
    ../shared/data/brain-tumor/brats2012-HG0001/BRATS_HG0001_{FLAIR,T1,T1C,T2}.mha
```""",
        "limits": """\
- Trained on **14** cases at 2 mm, for a short time on shared CPUs: sub-region boundaries are
  coarse, and the small necrotic / enhancing regions are the least reliable. Below the targets
  (whole tumour 0.85, core 0.75, enhancing 0.70): see docs/MODELS.md, "what limits the targets".
- The four sequences must be given in order (FLAIR, T1, T1ce, T2). A wrong order is refused
  (98 % of the wrong orders of the 19 BraTS cases, T1 <-> T1ce on all 19), but FLAIR <-> T1ce
  and two double swaps still pass on some cases, and the thresholds come from these 19
  skull-stripped high-grade gliomas only: see "Input checks" above.
- Expects BraTS-like input: skull-stripped, co-registered sequences of the same size, with the
  background exactly 0 (a channel without it is refused); without skull stripping results are
  unreliable.
- Sensitive to intensity non-uniformity (a bias field, MR not N4-corrected): on the 4 held-out
  cases a 2x linear field cost up to 0.19 whole-tumour Dice and a 4x quadratic one up to 0.41;
  strong fields (every linear 2x field and every 4x field of the study) are warned about, weaker
  ones are not (`inference.bias_field`; docs/INPUT_CHECKS_MR.md, "Intensity non-uniformity (bias
  field) of MR"). N4 removes the field, but on `Brats18_2013_11_1` the N4-corrected input gave
  whole-tumour Dice 0.61 against 0.72 on the uncorrected original.
- Validated on 4 cases only, and the scores vary a lot between them (enhancing tumour Dice 0.22
  to 0.85).
- A region of interest is fine: the crop is z-scored with the whole volume's MR statistics
  (since commit dfe012b), so a box 10 mm around the tumour of `Brats18_CBICA_ALU_1` gave
  whole-tumour Dice 0.852 against 0.808 for the whole volume (this model, L2).
- Not a medical device; research and demonstration use only.""",
    },
}


def per_depth_table(manifest: dict) -> str:
    per_depth = manifest["validation"]["per_depth"]
    names = [label["name"] for label in manifest["labels"]]
    header = "| depth | " + " | ".join(names) + " | mean Dice | s / volume |"
    lines = [header, "|" + "---|" * (len(names) + 3)]
    for key in DEPTH_KEYS:
        entry = per_depth.get(key)
        if entry is None:
            continue
        tag = "ensemble" if key == "ensemble" else f"L{key}"
        if key == str(manifest["recommended_depth"]):
            tag = f"**{tag}** (recommended)"
        dice = [_fmt(entry["dice"].get(n)) for n in names]
        lines.append(
            f"| {tag} | "
            + " | ".join(dice)
            + f" | {_fmt(entry['mean_dice'])} | {entry['seconds_per_volume']:.2f} |"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _time_ratio(row: dict) -> float:
    """With / without TTA, from CPU seconds where recorded (steadier on a loaded machine)."""
    if row.get("cpu_seconds") and row.get("cpu_seconds_tta"):
        return row["cpu_seconds_tta"] / row["cpu_seconds"]
    return row["seconds_tta"] / row["seconds"]


def tta_section(validation: dict) -> list[str]:
    """Test-time augmentation and the heads' disagreement, from scripts/evaluate_review.py
    --record (``validation.tta`` and ``validation.review``)."""
    tta, review = validation.get("tta") or {}, validation.get("review") or {}
    if not tta.get("per_depth"):
        return []
    name = lambda key: f"L{key}" if key.isdigit() else key  # noqa: E731
    lines = [
        "## Test-time augmentation and the review aid",
        "",
        f"`unetpp segment --tta` averages the softmax of mirrored passes along "
        f"{', '.join(tta['mirror_axes']) or 'no axis'} (model grid, LPS; "
        f"{2 ** len(tta['mirror_axes'])} passes). `--disagreement OUT` writes where the "
        "deep-supervision heads disagree. Measured with `"
        + tta["command"]
        + f"` on {len(tta['cases'])} case(s) ({tta['scoring']}); {tta['device']}. "
        "Details and thresholds: [docs/REVIEW.md](../../../../../docs/REVIEW.md).",
        "",
        "| depth | Dice | Dice with TTA | gain | s / case | s / case with TTA "
        "| time x (CPU s where recorded) "
        "| disagreement >= " + str(review.get("threshold", "-")) + ": precision / recall "
        "of the errors | Spearman (agreement, Dice) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(tta["per_depth"], key=DEPTH_KEYS.index):
        row = tta["per_depth"][key]
        plain, with_tta = next(iter(row["dice"].values())), next(iter(row["dice_tta"].values()))
        figures = (review.get("per_depth") or {}).get(key) or {}
        pr = " / ".join(
            "-" if figures.get(k) is None else f"{figures[k]:.2f}" for k in ("precision", "recall")
        )
        rho = "-" if figures.get("spearman") is None else f"{figures['spearman']:.2f}"
        lines.append(
            f"| {name(key)} | {plain:.3f} | {with_tta:.3f} | {with_tta - plain:+.3f} | "
            f"{row['seconds']:.2f} | {row['seconds_tta']:.2f} | "
            f"{_time_ratio(row):.1f} | {pr if figures else '-'} | {rho} |"
        )
    return lines + [""]


def card(task: str) -> str:
    folder = MODELS / task
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    text = TEXT[task]
    validation, training = manifest["validation"], manifest["training"]
    labels = "\n".join(
        f"- {label['value']} = **{label['name']}** "
        f"({label['terminology']['type']['scheme']} {label['terminology']['type']['code']} "
        f'"{label["terminology"]["type"]["meaning"]}")'
        for label in manifest["labels"]
    )
    parts = [
        f"# {text['title']} — `{manifest['name']}` (task `{task}`)",
        "",
        "A 3D UNet++ (Zhou et al., IEEE TMI 2019, arXiv:1912.05074) trained with this project's "
        "`unetpp train`, deep supervision on the four heads, so it can be pruned at inference to "
        "depth L1..L4 or run as the ensemble of the four heads.",
        "",
        "## Model",
        "",
        f"- Network: features {manifest['network']['features']}, "
        f"{manifest['network']['norm']} norm, {manifest['network']['in_channels']} input "
        f"channel(s) ({', '.join(c['name'] for c in manifest['channels'])}); fp16 weights "
        f"(sha256 `{manifest['sha256'][:16]}…`).",
        f"- Working grid: {manifest['spacing']} mm, tile {manifest['tile_size']} voxels (x, y, z),"
        f" overlap {manifest['overlap']}; post-processing {manifest['postprocess']}"
        + (
            "; a segment above its `plausible_ml` range is warned about (docs/INPUT_CHECKS.md)."
            if "plausible_ml" in manifest["postprocess"]
            else "."
        ),
        f"- Prompt: {json.dumps(manifest['prompt'])}.",
        f"- Recommended depth (pruning rule: shallowest depth within "
        f"{validation.get('depth_tolerance')} mean Dice of the best): "
        f"**L{manifest['recommended_depth']}**.",
        "- Labels:",
        labels,
        "",
        "## Data, labels and licences",
        "",
        text["data"],
        "",
        "## Validation",
        "",
        f"{validation['data']}. Label source: {validation['label_source']}. "
        f"Timed during training on {validation.get('device', 'cpu')} (a shared 2-core machine, "
        "threads as in the command, so seconds are noisy; the ratios between depths are what "
        "matters).",
        "",
        f"Validation cases ({len(validation['cases'])}): "
        + ", ".join(f"`{c}`" for c in validation["cases"]),
        "",
        per_depth_table(manifest),
        "",
        "![speed / accuracy](speed_accuracy.png)",
        "",
    ]
    parts += tta_section(validation)
    extra = folder / "evaluation.md"  # written by scripts/evaluate_<task>.py
    if extra.is_file():
        parts += [
            "## Evaluation as a user runs it",
            "",
            extra.read_text(encoding="utf-8").strip(),
            "",
        ]
    if "postprocess_note" in text:
        parts += ["## Post-processing", "", text["postprocess_note"], ""]
    if "checks" in text:
        parts += ["## Input checks", "", text["checks"], ""]
    parts += [
        "## Training",
        "",
        f"- Command (reproduced by `scripts/train_default_models.sh {task}`):",
        "",
        "```",
        training["command"],
        "```",
        "",
        f"- Code commit: `{training['commit']}`; {training['epochs']} epochs x "
        f"{training['iterations_per_epoch']} iterations, batch {training['batch_size']}, "
        f"{training['training_cases']} training cases, final loss {training['final_loss']}.",
        *([f"- {text['training_note']}"] if "training_note" in text else []),
        "- Hardware: CPU only (2 shared cores, `nice -n 19`, threads as in the command); no GPU "
        "was available.",
        "- Log and curves: `train.log`, `history.json`, `training_curve.png` in this folder.",
        "",
        "## Known limits",
        "",
        text["limits"],
        "",
    ]
    return "\n".join(parts)


def summary(tasks: list[str]) -> str:
    lines = [
        "# Default models",
        "",
        "Three small UNet++ models ship in `UNetPlusPlus/UNetPlusPlusLib/Resources/Models/` "
        "so that `unetpp segment --task ...` "
        "and the Slicer module work out of the box. They were trained on CPU with short budgets "
        "on little public data: read each card before trusting a number. Reproduce them with "
        "`scripts/train_default_models.sh`.",
        "",
        "| task | inputs | labels | training / validation data | recommended | "
        "mean Dice L1 / L2 / L3 / L4 / ens. | s / volume L1 / L4 / ens. | as a user runs it | "
        "card |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        manifest = json.loads((MODELS / task / "model.json").read_text(encoding="utf-8"))
        per_depth = manifest["validation"]["per_depth"]
        dice = " / ".join(_fmt(per_depth[k]["mean_dice"]) for k in DEPTH_KEYS)
        secs = " / ".join(
            f"{per_depth[k]['seconds_per_volume']:.2f}" for k in ("1", "4", "ensemble")
        )
        lines.append(
            f"| `{task}` | {', '.join(c['name'] for c in manifest['channels'])} | "
            f"{', '.join(label['name'] for label in manifest['labels'])} | "
            f"{TEXT[task]['summary']} | "
            f"L{manifest['recommended_depth']} | {dice} | {secs} | {TEXT[task]['headline']} | "
            f"[CARD](../UNetPlusPlus/UNetPlusPlusLib/Resources/Models/{task}/CARD.md) |"
        )
    lines += [
        "",
        "Dice is the trainer's validation on held-out cases, on the model's grid, before "
        "post-processing; each card adds an evaluation as a user runs the model (input grid, "
        "post-processing, prompts). Seconds are per validation volume on a shared 2-core CPU. "
        "Data notes: the liver references are TotalSegmentator model output "
        "(the training set adds one clinician-corrected scan); the nodule and brain-tumour "
        "references are expert labels (LIDC-IDRI readers; BraTS 2018).",
        "",
    ]
    return "\n".join(lines)


#: docs/MODELS.md below this line is written by hand and kept when the summary is regenerated.
HAND_WRITTEN = "<!-- Hand-written below this line: scripts/write_model_cards.py keeps it. -->"


def main(argv: Optional[list[str]] = None) -> int:
    """Write each task's CARD.md into its package and docs/MODELS.md; with ``--out DIR``
    into DIR/<task>/CARD.md and DIR/MODELS.md instead (the committed files are compared with
    these by Testing/test_model_cards.py)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write here instead of the repository")
    args = parser.parse_args(argv)
    tasks = [t for t in TEXT if (MODELS / t / "model.json").is_file()]
    for task in tasks:
        path = args.out / task / "CARD.md" if args.out else MODELS / task / "CARD.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(card(task), encoding="utf-8")
        print(path)
    models_md = ROOT / "docs" / "MODELS.md"
    old = models_md.read_text(encoding="utf-8") if models_md.is_file() else ""
    kept = old[old.index(HAND_WRITTEN) :] if HAND_WRITTEN in old else ""
    target = args.out / "MODELS.md" if args.out else models_md
    target.write_text(summary(tasks) + ("\n" + kept if kept else ""), encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
