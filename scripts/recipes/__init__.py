"""The paper recipes' tables (tables.py); the recipes themselves are Snakemake rules,
scripts/workflow/rules/."""
