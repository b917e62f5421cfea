import json

from tests.tiny import load_script
from vgfm_bayes import FitConfig, zoo
from vgfm_bayes.bench import run_bench


def test_every_zoo_config_is_a_valid_fit_config():
    names = zoo.available()
    assert "point" in names
    for name in names:
        cfg = FitConfig.from_dict(zoo.zoo_config(name))
        cfg.validate()
        assert cfg.head == name


def test_bench_quick_writes_tables_and_cards(tmp_path):
    runs = run_bench(
        out=tmp_path, datasets=["dyngen"], heads=["point"], seeds=[0], quick=True, progress=False
    )
    assert len(runs) == 1
    m = runs[0]["metrics"]
    assert m["peak_rss_mb"] > 0 and m["seconds"]["fit_total"] > 0
    assert "dyngen" in (tmp_path / "bench.md").read_text()
    assert json.loads((tmp_path / "bench.json").read_text())[0]["head"] == "point"
    # the card writer (a script) puts these rows under the head's about.md and config
    write_cards = load_script("write_cards")
    text = write_cards.card("point", [], "results.jsonl", runs)
    assert text.startswith("# point") and "```toml" in text
    assert "| dyngen | point |" in text
