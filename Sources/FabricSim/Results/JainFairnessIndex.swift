/// Jain's fairness index, (Σx)² / (n·Σx²): 1 when all n values are equal, 1/n when one
/// value takes everything. Nil for no values or when all are zero.
///
/// ```swift
/// jainFairnessIndex([10, 10, 10, 10])   // 1.0
/// jainFairnessIndex([40, 0, 0, 0])      // 0.25
/// ```
public func jainFairnessIndex(_ values: some Collection<Double>) -> Double? {
    guard !values.isEmpty else { return nil }
    var sum = 0.0
    var sumOfSquares = 0.0
    for value in values {
        sum += value
        sumOfSquares += value * value
    }
    guard sumOfSquares > 0 else { return nil }
    return sum * sum / (Double(values.count) * sumOfSquares)
}
