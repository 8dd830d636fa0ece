"""guardian: git-backed snapshots, validated restore and protected components for shared work trees."""

__version__ = "0.1.0"
