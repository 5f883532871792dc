"""Describing pictures with Gemini: client, token rules, budgets and retries."""
