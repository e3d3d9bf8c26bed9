"""hcp.ui"""
