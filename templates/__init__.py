"""Jinja2 templates that render a KernelSpec (nndyn.derive) into a generated kernel module."""
