"""hcp.device"""
