"""Promotions: which shoppers receive which coupon or activity invitation, under a budget.

Every shopper sees the same list price and every recipient the same terms; only who receives an
offer is personal, aimed at those it moves (uplift), not those who would buy anyway.
"""
