# Package discovery lives here because pyproject.toml alone cannot add the top-level recipes/
# folder to the automatically found packages: it ships inside the wheel as netexport/recipe_files.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["netexport", "netexport.*"]) + ["netexport.recipe_files"],
    package_dir={"netexport.recipe_files": "recipes"},
    package_data={"netexport.recipe_files": ["*.yaml", "*/*.yaml"]},
)
