"""The paper-experiment recipes: imagenet.py, cub.py, iwslt.py (see common.py for the runner)."""
