"""The Neuron Calls API over HTTP: the client, the errors it raises, the rate limit it learns.

Import from the module that defines a name: `client.NeuronClient`, `errors.NotFoundError`,
`limiter.RateLimiter`.
"""
