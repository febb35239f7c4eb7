"""Loading miniF2F from a checkout or JSONL, filters, categories, and errors that name the line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prover.minif2f.dataset import Category, DatasetError, category_of, load_dataset
from tests.evaluation.worlds import HEADER, NAMES, statement, write_jsonl

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_JSONL = REPO_ROOT.parent / "shared" / "data" / "minif2f_lean4.jsonl"
needs_shared_data = pytest.mark.skipif(not SHARED_JSONL.exists(), reason=f"{SHARED_JSONL} is absent")


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("mathd_algebra_478", Category.MATHD_ALGEBRA),
        ("mathd_numbertheory_3", Category.MATHD_NUMBERTHEORY),
        ("amc12a_2019_p21", Category.AMC),
        ("amc12_2001_p5", Category.AMC),
        ("aimeII_2001_p3", Category.AIME),
        ("aime_1983_p1", Category.AIME),
        ("imo_1959_p1", Category.IMO),
        ("imosl_2007_algebra_p6", Category.IMO),
        ("induction_sum_odd", Category.INDUCTION),
        ("algebra_sqineq_at2malt1", Category.ALGEBRA),
        ("numbertheory_2dvd4expn", Category.NUMBERTHEORY),
        ("my_lemma", Category.OTHER),
    ],
)
def test_category_from_name(name: str, category: Category) -> None:
    assert category_of(name) is category


def write_checkout(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checkout_layout_gives_header_and_statement_through_by(tmp_path: Path) -> None:
    root = write_checkout(
        tmp_path / "miniF2F-lean4",
        {
            "MiniF2F/Test/mathd_algebra_10.lean": HEADER + statement("mathd_algebra_10") + " sorry\n",
            "MiniF2F/Test/imo_1959_p1.lean": HEADER + statement("imo_1959_p1") + " sorry",
            "MiniF2F/Valid/amc12a_2019_p21.lean": HEADER + statement("amc12a_2019_p21") + "\n  sorry\n",
        },
    )
    dataset = load_dataset(root)
    assert dataset.kind == "checkout"
    assert dataset.names == ["amc12a_2019_p21", "imo_1959_p1", "mathd_algebra_10"]  # valid first, then by name
    problem = dataset.problems[-1]
    assert problem.theorem.header == HEADER
    assert problem.theorem.formal_statement == statement("mathd_algebra_10")
    assert problem.split == "test" and problem.category is Category.MATHD_ALGEBRA
    assert problem.theorem.file_text("by\n  simp").startswith(HEADER + "theorem mathd_algebra_10 (n : ℕ)")
    assert load_dataset(root, splits=["test"]).names == ["imo_1959_p1", "mathd_algebra_10"]
    before = dataset.sha256
    (root / "MiniF2F/Test/imo_1959_p1.lean").write_text(HEADER + statement("imo_1959_p1") + " sorry\n")
    assert load_dataset(root).sha256 != before, "the hash covers every file's bytes"


def test_checkout_file_without_sorry_or_with_a_wrong_name_is_rejected(tmp_path: Path) -> None:
    root = write_checkout(
        tmp_path / "a", {"MiniF2F/Test/mathd_algebra_10.lean": HEADER + statement("mathd_algebra_10") + "\n  simp\n"}
    )
    with pytest.raises(DatasetError, match=r"mathd_algebra_10\.lean: expected a header"):
        load_dataset(root)
    root = write_checkout(tmp_path / "b", {"MiniF2F/Test/foo.lean": HEADER + statement("bar") + " sorry"})
    with pytest.raises(DatasetError, match=r"named 'bar' but the file is foo\.lean"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="not a miniF2F-lean4 checkout"):
        load_dataset(tmp_path / "a" / "MiniF2F")
    with pytest.raises(DatasetError, match="no such file or directory"):
        load_dataset(tmp_path / "missing")


def test_filters_by_split_pattern_category_and_count(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", NAMES)
    with open(path, "a", encoding="utf-8") as handle:
        record = {"name": "mathd_algebra_99", "split": "valid", "header": HEADER, "formal_statement": statement("x")}
        handle.write(json.dumps(record) + "\n")
    dataset = load_dataset(path)
    assert dataset.names[0] == "mathd_algebra_99", "valid before test"
    assert load_dataset(path, splits=["valid"]).names == ["mathd_algebra_99"]
    assert len(load_dataset(path, splits=["all"])) == len(NAMES) + 1
    assert load_dataset(path, splits=["test"], pattern="mathd_*").names == [
        "mathd_algebra_10",
        "mathd_algebra_11",
        "mathd_numbertheory_3",
        "mathd_numbertheory_5",
    ]
    assert load_dataset(path, pattern="amc*,imo_*").names == ["amc12a_2019_p21", "imo_1959_p1"]
    assert load_dataset(path, categories=["mathd_numbertheory", "induction"]).names == [
        "mathd_numbertheory_3",
        "induction_sum_odd",
        "mathd_numbertheory_5",
    ]
    assert load_dataset(path, splits=["test"], limit=3).names == list(NAMES[:3])
    assert len(load_dataset(path, pattern="nothing*")) == 0
    with pytest.raises(DatasetError, match="unknown category 'geometry'"):
        load_dataset(path, categories=["geometry"])
    with pytest.raises(DatasetError, match="unknown split 'train'"):
        load_dataset(path, splits=["train"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"d\.jsonl:2: not valid JSON"),
        ('["a"]', r"d\.jsonl:2: expected a JSON object"),
        (
            json.dumps({"name": "x", "split": "test", "header": ""}),
            r"d\.jsonl:2: field 'formal_statement': Field required",
        ),
        (
            json.dumps({"name": "x", "split": "train", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'split'",
        ),
        (
            json.dumps({"name": "x", "split": "test", "header": "", "formal_statement": "theorem x : True := by simp"}),
            r"d\.jsonl:2: field 'formal_statement': .*must end with `:= by`",
        ),
        (
            json.dumps({"name": "a b", "split": "test", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'name'",
        ),
        (
            json.dumps({"name": NAMES[0], "split": "test", "header": "", "formal_statement": "theorem x : True := by"}),
            r"d\.jsonl:2: field 'name': 'mathd_algebra_10' already appears on line 1",
        ),
    ],
)
def test_malformed_jsonl_record_names_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", NAMES[:1])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


@needs_shared_data
def test_real_minif2f_jsonl_and_an_equivalent_checkout_agree(tmp_path: Path) -> None:
    dataset = load_dataset(SHARED_JSONL)
    assert len(dataset) == 488
    test = dataset.select(splits=["test"])
    assert len(test) == 244
    counts = {category: 0 for category in Category}
    for problem in test.problems:
        counts[problem.category] += 1
    assert counts[Category.MATHD_ALGEBRA] == 70 and counts[Category.AMC] == 45 and counts[Category.OTHER] == 0
    # The upstream files are header + statement + " sorry"; rebuilt that way, the checkout loader agrees.
    root = tmp_path / "checkout"
    for problem in dataset.problems:
        folder = "Test" if problem.split == "test" else "Valid"
        path = root / "MiniF2F" / folder / f"{problem.name}.lean"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(problem.theorem.header + problem.theorem.formal_statement + " sorry", encoding="utf-8")
    from_checkout = {problem.name: problem for problem in load_dataset(root).problems}
    assert all(
        from_checkout[p.name].theorem == p.theorem and from_checkout[p.name].split == p.split for p in dataset.problems
    )


def test_dojo_locations_from_jsonl_sources_and_from_a_checkout(tmp_path: Path) -> None:
    from prover.minif2f.dataset import with_dojo_locations

    path = tmp_path / "d.jsonl"
    record = {
        "name": "mathd_algebra_10",
        "split": "test",
        "header": HEADER,
        "formal_statement": statement("mathd_algebra_10"),
        "source": "yangky11/miniF2F-lean4@5746b7d:MiniF2F/Test/mathd_algebra_10.lean",
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    location = with_dojo_locations(load_dataset(path)).problems[0].theorem.location
    assert location is not None
    assert (location.repo_url, location.commit, location.file_path, location.full_name) == (
        "https://github.com/yangky11/miniF2F-lean4",
        "5746b7d",
        "MiniF2F/Test/mathd_algebra_10.lean",
        "mathd_algebra_10",
    )
    pinned = with_dojo_locations(load_dataset(path), commit="5746b7d6c47855ce1294bed87329618ff7f1bc31")
    assert pinned.problems[0].theorem.location.commit.startswith("5746b7d6c4")  # type: ignore[union-attr]
    with pytest.raises(DatasetError, match="owner/repo@commit:path"):
        with_dojo_locations(load_dataset(write_jsonl(tmp_path / "plain.jsonl", NAMES[:1])))

    root = write_checkout(
        tmp_path / "checkout", {"MiniF2F/Test/imo_1959_p1.lean": HEADER + statement("imo_1959_p1") + " sorry"}
    )
    with pytest.raises(DatasetError, match="not a git checkout"):
        with_dojo_locations(load_dataset(root))
    located = with_dojo_locations(load_dataset(root), commit="abc1234").problems[0].theorem.location
    assert located is not None
    assert (located.repo_url, located.file_path) == (str(root), "MiniF2F/Test/imo_1959_p1.lean")
