// Command sampleservice is the stand-in application of the deployment's VMs
// and of the network-namespace lab (deploy/lab): a small HTTP service that
// says which service and node answered, with a health endpoint.
//
//	sampleservice -name web -node app1 -listen :8080 [-upstream http://lb:8000/api/]
//
// GET / answers "<name> on <node>". GET /healthz answers 200 while the
// process serves. With -upstream, a GET of a path ending in /chain also calls the upstream service
// (web → api → db) and appends its answer, so the dependencies the
// registrar declares are real calls. Unlike Python's http.server (an accept
// backlog of 5), Go's listener keeps up with the lab's load generator.
package main
