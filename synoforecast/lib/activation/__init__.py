"""Activation: the Metabase client, chat notifications and the one HTTP retry rule they share."""
