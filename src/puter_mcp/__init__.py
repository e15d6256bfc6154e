"""puter-mcp: Puter.com's AI models inside every MCP client."""

__version__ = "0.1.0"
