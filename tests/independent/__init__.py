"""Implementations written independently of govhub's libraries, to check its output against."""
