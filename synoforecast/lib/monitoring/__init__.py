"""What on-call watches: freshness of the exports and of the published forecasts."""
