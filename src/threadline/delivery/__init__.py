"""Delivery: stories out to where the team works (trackers), and their state back in."""
