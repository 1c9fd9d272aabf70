"""Option values that make no sense are refused when the command line is parsed: one `error:`
line naming the option, exit status 2, before any data is read or any folder is written
(`unetpp train --lr -1` failed after reading the data, as an internal error; `--lr inf` wrote
`"lr": Infinity`, invalid JSON, into plan.json). `--all-components` and `--largest-component`
exclude each other. One 4D file given for a multi-channel model gets a hint to split it."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import build_parser, main


def _train(tmp_path, *options: str) -> list[str]:
    """`unetpp train` arguments on a folder that does not exist: had parsing passed, the error
    would be about the missing data folder instead."""
    return ["train", str(tmp_path / "no-data"), "-o", str(tmp_path / "out"), *options]


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--lr", "-1", "greater than 0"),
        ("--lr", "0", "greater than 0"),
        ("--lr", "nan", "not a finite number"),
        ("--lr", "inf", "not a finite number"),
        ("--weight-decay", "-1", "0 or more"),
        ("--weight-decay", "nan", "not a finite number"),
        ("--overlap", "1", "from 0 to 0.75"),
        ("--overlap", "0.99", "from 0 to 0.75"),
        ("--overlap", "nan", "not a finite number"),
        ("--foreground-fraction", "1.5", "[0, 1]"),
        ("--foreground-fraction", "nan", "not a finite number"),
        ("--val-fraction", "1", "[0, 1)"),
        ("--val-fraction", "-0.1", "[0, 1)"),
        ("--train-fraction", "0", "(0, 1]"),
        ("--train-fraction", "1.5", "(0, 1]"),
        ("--depth-tolerance", "-0.01", "0 or more"),
        ("--depth-tolerance", "inf", "not a finite number"),
        ("--time-budget", "0", "longer than zero"),
        # a negative value starting like an option ("-5m") was "expected one argument"
        ("--time-budget", "-5m", "'-5m' must be longer than zero"),
        ("--time-budget", "-1h30m", "longer than zero"),
        ("--time-budget", "-.5h", "longer than zero"),
        ("--lr", "-1e-3", "greater than 0"),
        ("--lr", "-.5", "greater than 0"),
        ("--seed", "-1", "0 or more"),
        ("--max-cases", "-3", "1 or more"),
        ("--time-budget", "5 minutes", "write a duration"),
        ("--time-budget", "inf", "write a duration"),
        ("--epochs", "0", "1 or more"),
        ("--batch-size", "-2", "1 or more"),
        # a bad regex was an "internal error ... please report it", exit 1 (tester fresh30)
        ("--patient-regex", "(", "not a valid regular expression"),
        ("--val-cases", "case01,(", "not a valid regular expression"),
        # an empty list was ignored in silence, the split falling back to a fraction (fresh31)
        ("--val-cases", "", "names no case or patient"),
        ("--val-cases", " , ", "names no case or patient"),
        ("--patient-regex", "", "an empty regular expression names no patient"),
        ("--batch-size", "1025", "must be at most 1024, got 1025"),
    ],
)
def test_train_refuses_senseless_values_before_any_work(tmp_path, capsys, option, value, says):
    assert main(_train(tmp_path, option, value)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(f"error: argument {option}: "), error
    assert says in error and "unetpp train --help" in error, error
    assert "internal error" not in error and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--epochs", "--iterations-per-epoch", "--batch-size"])
@pytest.mark.parametrize("digits", [400, 5000])
def test_train_refuses_an_absurd_count_in_one_short_line(tmp_path, capsys, option, digits):
    """A 400-digit --epochs passed parsing and ended, after the preprocessing, with an internal
    error (OverflowError); over 4300 digits it was "not a whole number". Either is one line
    that names the number by its length instead of repeating it."""
    assert main(_train(tmp_path, option, "9" * digits)) == 2
    captured = capsys.readouterr()
    error = captured.err
    assert error.count("\n") == 1 and error.startswith(f"error: argument {option}: "), error
    assert f"{digits}-digit number" in error and "9" * 30 not in error, error
    assert "not a whole number" not in error and "internal error" not in error
    assert captured.out == "" and not (tmp_path / "out").exists()


def test_the_largest_count_is_accepted_and_one_more_is_refused(tmp_path, capsys):
    from UNetPlusPlusLib.training.train_args import MAX_EPOCHS

    args = build_parser().parse_args(_train(tmp_path, "--epochs", str(MAX_EPOCHS)))
    assert args.epochs == MAX_EPOCHS
    assert main(_train(tmp_path, "--epochs", str(MAX_EPOCHS + 1))) == 2
    error = capsys.readouterr().err
    assert f"must be at most {MAX_EPOCHS}, got {MAX_EPOCHS + 1}" in error, error


def test_the_training_module_entry_point_reads_negative_values_too(tmp_path, capsys):
    """`python -m UNetPlusPlusLib.training.cli` (torchrun) has its own parser."""
    from UNetPlusPlusLib.training.cli import main as train_main

    with pytest.raises(SystemExit):
        train_main([str(tmp_path / "no-data"), "-o", str(tmp_path / "out"), "--time-budget", "-5m"])
    error = capsys.readouterr().err
    assert "argument --time-budget: '-5m' must be longer than zero" in error
    assert "expected one argument" not in error and not (tmp_path / "out").exists()


def test_an_option_after_a_value_option_is_still_an_option(tmp_path, capsys):
    """Only arguments that start like a negative number are taken as values."""
    assert main(_train(tmp_path, "--time-budget", "--plan-only")) == 2
    assert "argument --time-budget: expected one argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "values, says", [(["0", "48", "16"], "1 or more"), (["40", "48", "16"], "multiple of 16")]
)
def test_train_refuses_a_tile_that_is_not_a_positive_multiple_of_16(tmp_path, capsys, values, says):
    assert main(_train(tmp_path, "--tile", *values)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "argument --tile" in error and says in error, error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--spacing", "--ct-window"])
def test_train_refuses_non_finite_millimetres_and_windows(tmp_path, capsys, option):
    values = ["1", "nan", "1"] if option == "--spacing" else ["-100", "inf"]
    assert main(_train(tmp_path, option, *values)) == 2
    assert "not a finite number" in capsys.readouterr().err
    if option == "--spacing":
        assert main(_train(tmp_path, option, "1", "0", "1")) == 2
        assert "greater than 0" in capsys.readouterr().err


def test_sensible_train_values_are_parsed_as_numbers(tmp_path):
    args = build_parser().parse_args(
        _train(
            tmp_path, "--lr", "1e-3", "--weight-decay", "0", "--overlap", "0",
            "--foreground-fraction", "1", "--val-fraction", "0", "--train-fraction", "1",
            "--depth-tolerance", "0", "--time-budget", "1h30m", "--spacing", "1", "1", "2.5",
        )
    )  # fmt: skip
    assert (args.lr, args.weight_decay, args.overlap) == (1e-3, 0.0, 0.0)
    assert (args.foreground_fraction, args.val_fraction, args.train_fraction) == (1.0, 0.0, 1.0)
    assert args.time_budget == "1h30m" and args.spacing == [1.0, 1.0, 2.5]


SEGMENT = ["segment", "ct.nii.gz", "--task", "liver", "-o", "x.seg.nrrd"]


def test_all_components_and_largest_component_exclude_each_other(capsys):
    for pair in (
        ["--all-components", "--largest-component"],
        ["--largest-component", "--all-components"],
    ):
        assert main([*SEGMENT, *pair]) == 2
        error = capsys.readouterr().err
        assert "not allowed with argument" in error and error.count("\n") == 1, error
    parser = build_parser()
    assert parser.parse_args([*SEGMENT, "--all-components"]).largest_component is False
    assert parser.parse_args([*SEGMENT, "--largest-component"]).largest_component is True
    assert parser.parse_args(SEGMENT).largest_component is None  # the model's choice


def _write_4d(path, frames: int) -> str:
    array = np.random.default_rng(0).normal(size=(frames, 6, 7, 8)).astype(np.float32)
    image = sitk.GetImageFromArray(array, isVector=False)  # size (8, 7, 6, frames)
    sitk.WriteImage(image, str(path))
    return str(path)


def test_one_4d_file_for_a_four_channel_model_gets_a_hint_to_split_it(tmp_path, capsys):
    stacked = _write_4d(tmp_path / "brats_4d.nii.gz", 4)
    argv = ["segment", stacked, "--task", "brain-tumor", "-o", str(tmp_path / "x.seg.nrrd")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "needs 4 input volume(s)" in error and "got 1." in error
    assert "brats_4d.nii.gz is a 4D image with 4 frames" in error
    assert "split it into one 3D file per sequence" in error and error.count("\n") == 1
    assert "sitk.Extract" in error and "'Sequences' module" in error
    assert not (tmp_path / "x.seg.nrrd").exists()


def test_no_split_hint_when_the_frames_do_not_match_the_channels(tmp_path, capsys):
    argv = ["segment", _write_4d(tmp_path / "three.nii.gz", 3), "--task", "brain-tumor"]
    assert main([*argv, "-o", str(tmp_path / "x.seg.nrrd")]) == 2
    error = capsys.readouterr().err
    assert "needs 4 input volume(s)" in error and "split" not in error


def test_one_vector_file_with_four_values_per_voxel_gets_the_hint_too(tmp_path, capsys):
    array = np.zeros((6, 7, 8, 4), dtype=np.float32)
    path = tmp_path / "vector.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=True), str(path))
    argv = ["segment", str(path), "--task", "brain-tumor", "-o", str(tmp_path / "x.seg.nrrd")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "vector.nrrd is a 3D image with 4 values per voxel" in error
    # the tools that split components (sitk.Extract and 'Sequences' split frames, not these)
    assert "VectorIndexSelectionCast" in error and "'Vector to Scalar Volume'" in error
    assert "sitk.Extract" not in error and "Sequences" not in error


def test_the_overlap_help_gives_the_range_the_parser_enforces(capsys):
    """`unetpp segment --help` said "0 <= overlap < 1" while 0.9 was refused (from 0 to 0.75)."""
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "tile overlap, a fraction from 0 to 0.75" in text and "overlap < 1" not in text
