"""hcp.sync"""
