package config

// ExampleBase is exampleBase for the tests of package config_test.
var ExampleBase = exampleBase
