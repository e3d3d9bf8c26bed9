"""hcp.collector"""
