"""The HTTP gateway: Puter's models behind the OpenAI, Anthropic and Ollama APIs.

A front end like the MCP server: it imports the core's public face (`puter_mcp.core`) and the
shared HTTP rules (`puter_mcp.http_serving`), never what lies below the core. docs/gateway-reference.md
describes it for users; `puter_mcp.gateway.app` says how its parts fit.
"""
