"""hcp.config"""
