"""Print the lifecycle's mermaid diagram (paste into docs/architecture.md): python -m workflow.diagram"""

from .domain.states import mermaid_diagram

if __name__ == "__main__":
    print(mermaid_diagram(), end="")
