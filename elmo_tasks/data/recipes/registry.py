"""Every task set by name: the recipes of each source family, in ``data prepare --list`` order."""

from __future__ import annotations

from elmo_tasks.data.recipes import brown, pattern3, wordnet
from elmo_tasks.data.recipes.base import Recipe
from elmo_tasks.errors import UserError

RECIPES: dict[str, Recipe] = {recipe.name: recipe for family in (pattern3, wordnet, brown) for recipe in family.RECIPES}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a UserError listing the known ones."""
    if name not in RECIPES:
        raise UserError(f"unknown data set {name!r}: known sets are {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
