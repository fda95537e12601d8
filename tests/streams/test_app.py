"""The worker's Faust app, as it is made before it starts."""

from __future__ import annotations

from pathlib import Path

from services.settings import Settings
from streams.app import create_app


def test_the_app_makes_its_data_directory_in_a_home_nothing_has_written_to(
    tmp_path: Path,
) -> None:
    home = tmp_path / "fresh"
    app = create_app(Settings(home=home, kafka_bootstrap="127.0.0.1:9"))
    # Faust itself makes only the last level, as the worker starts: a missing run/
    # stopped the worker at start-up
    assert Path(app.conf.datadir).is_dir()
    assert Path(app.conf.datadir).parent == home / "run"
