"""Normalisation per search-parameter type: resource values → index entries, query values → conditions.

One module per type (string, token, reference, uri, date, number, quantity). Each is pure: it
knows neither the store nor HTTP.
"""
