"""What ships: the README's generated table is current, and a non-editable wheel finds its recipes."""

import subprocess
import sys
import zipfile
from pathlib import Path

from netexport.docs import render
from netexport.recipes import recipe_names

ROOT = Path(__file__).resolve().parent.parent


def test_readme_models_table_is_generated_and_current():
    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "README table is stale: run `make readme`"


def test_wheel_ships_the_recipes_and_finds_them_when_installed(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("netexport-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("recipe_files/", 1)[1] for n in names if "/recipe_files/" in n and n.endswith(".yaml")}
    in_repo = {str(p.relative_to(ROOT / "recipes")) for p in (ROOT / "recipes").rglob("*.yaml")}
    assert shipped == in_repo
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import netexport.recipes as r; print(r.recipes_dir()); print(len(r.recipe_names()))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}).stdout.split()
    assert out[0].startswith(str(target))
    assert int(out[1]) == len(recipe_names())
