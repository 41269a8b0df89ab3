public struct ThroughputCommand { public static func main() {} }
