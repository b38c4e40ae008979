"""dbt: the vars a run passes and the models a run must rebuild."""
