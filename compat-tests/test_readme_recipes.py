"""The README's client recipes are the files the suite configures its
clients from: each file in recipes/ appears in the README verbatim."""

from conftest import REPO, RECIPES


def test_every_recipe_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    recipes = sorted(RECIPES.iterdir())
    assert len(recipes) == 12
    for path in recipes:
        assert f"\n{path.read_text()}```" in readme, f"{path.name} differs from the README"
