"""hcp.sim"""
