"""HTTP routes, one APIRouter module per resource: experiments, registry, health."""
