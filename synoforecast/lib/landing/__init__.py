"""The quarter in progress: where it will land, replays of past quarters, the landing's cohorts."""
