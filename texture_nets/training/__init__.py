"""Train a style: config and recipes, data, the loop, a run and its files, dashboard."""
