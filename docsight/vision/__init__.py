"""Describing pictures: the description service, the provider port and its providers, prompt, budgets, retries."""
