"""The paper recipes' tables (tables.py, paired.py); the recipes are Snakemake rules
(scripts/workflow/rules/)."""
