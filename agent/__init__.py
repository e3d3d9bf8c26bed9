"""hcp.agent"""
